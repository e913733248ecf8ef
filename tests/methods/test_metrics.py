import numpy as np
import pytest

from kernelc.errors import InputError
from kernelc.methods import accuracy, mae, one_hot, rmse


def test_one_hot_centred():
    out = one_hot([0, 2, 1])
    assert np.allclose(out, [[2 / 3, -1 / 3, -1 / 3], [-1 / 3, -1 / 3, 2 / 3], [-1 / 3, 2 / 3, -1 / 3]])
    assert np.allclose(out.sum(axis=1), 0.0)
    assert one_hot([1], n_classes=4).tolist() == [[-0.25, 0.75, -0.25, -0.25]]


def test_accuracy_mae_rmse():
    scores = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    assert accuracy(scores, [0, 1, 1, 1]) == 0.75
    assert accuracy(scores, one_hot([0, 1, 0, 1])) == 1.0
    assert accuracy([0, 1, 1], [0, 1, 0]) == pytest.approx(2 / 3)
    assert mae([1.0, 2.0, 4.0], [1.0, 3.0, 2.0]) == pytest.approx(1.0)
    assert rmse([1.0, 2.0, 4.0], [1.0, 3.0, 2.0]) == pytest.approx(np.sqrt(5 / 3))


def test_metric_errors():
    with pytest.raises(InputError, match=r"label 3 is out of range for n_classes=3"):
        one_hot([0, 3], n_classes=3)
    with pytest.raises(InputError, match=r"n_classes must be an integer >= 2"):
        one_hot([0, 0])
    with pytest.raises(InputError, match=r"labels must be >= 0, got -1"):
        one_hot([-1, 1])
    with pytest.raises(InputError, match=r"non-integer"):
        one_hot([0.5, 1])
    with pytest.raises(InputError, match=r"pred has 2 rows but labels has 3"):
        accuracy(np.zeros((2, 3)), [0, 1, 2])
    with pytest.raises(InputError, match=r"pred shape \(3,\) does not match target shape \(3, 1\)"):
        mae([1, 2, 3], [[1], [2], [3]])
    with pytest.raises(InputError, match=r"pred contains 1 NaN/inf"):
        rmse([np.nan, 1.0], [1.0, 1.0])


def test_label_and_score_validation_messages():
    with pytest.raises(InputError, match=r"labels is not an array \("):
        one_hot([[0, 1], [2]])                       # ragged
    with pytest.raises(InputError, match=r"labels must be 1-D class labels, got shape \(2, 1\)"):
        one_hot([[0], [1]])
    with pytest.raises(InputError, match=r"^input error: labels is empty$"):
        one_hot([])
    with pytest.raises(InputError, match=r"labels must be integer class labels, got dtype <U1"):
        one_hot(["a", "b"])
    with pytest.raises(InputError, match=r"got non-integer or NaN values"):
        one_hot([0.0, np.nan])
    with pytest.raises(InputError, match=r"pred is not a numeric array \("):
        mae(["x", "y"], [1.0, 2.0])
    with pytest.raises(InputError, match=r"pred must be 1-D or 2-D, got shape \(1, 1, 2\)"):
        rmse(np.zeros((1, 1, 2)), [1.0, 2.0])
    with pytest.raises(InputError, match=r"^input error: target is empty$"):
        mae([1.0], [])
