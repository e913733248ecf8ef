"""Targets and scores for kernel regression: centred one-hot labels, accuracy, MAE, RMSE."""
from __future__ import annotations

from typing import Optional

import numpy as np

from ..errors import InputError


def _labels(name: str, labels) -> np.ndarray:
    """1-D non-negative integer labels (integral floats are accepted), else InputError."""
    try:
        arr = np.asarray(labels)
    except (TypeError, ValueError) as exc:  # ragged input
        raise InputError(f"{name} is not an array ({exc})") from None
    if arr.ndim != 1:
        raise InputError(f"{name} must be 1-D class labels, got shape {arr.shape}")
    if arr.size == 0:
        raise InputError(f"{name} is empty")
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise InputError(f"{name} must be integer class labels, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all() or (arr != np.round(arr)).any():
            raise InputError(f"{name} must be integer class labels, got non-integer or NaN values")
    arr = arr.astype(np.int64)
    if (arr < 0).any():
        raise InputError(f"{name} must be >= 0, got {arr.min()}")
    return arr


def _scores(name: str, a, ndims=(1, 2)) -> np.ndarray:
    try:
        arr = np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name} is not a numeric array ({exc})") from None
    if arr.ndim not in ndims:
        raise InputError(f"{name} must be {' or '.join(f'{d}-D' for d in ndims)}, got shape {arr.shape}")
    if arr.size == 0:
        raise InputError(f"{name} is empty")
    if not np.isfinite(arr).all():
        raise InputError(f"{name} contains {int((~np.isfinite(arr)).sum())} NaN/inf value(s)")
    return arr


def one_hot(labels, n_classes: Optional[int] = None) -> np.ndarray:
    """Centred one-hot targets (N, k): ``1 − 1/k`` for the true class, ``−1/k`` otherwise.

    Each row sums to zero, matching a zero-mean network output at initialisation (the usual
    choice in the neural-tangents examples); ``argmax`` still recovers the label. ``k`` defaults
    to ``max(labels) + 1`` and must be >= 2.
    """
    y = _labels("labels", labels)
    k = int(y.max()) + 1 if n_classes is None else n_classes
    if not isinstance(k, (int, np.integer)) or k < 2:
        raise InputError(f"n_classes must be an integer >= 2, got {n_classes!r}")
    if y.max() >= k:
        raise InputError(f"label {int(y.max())} is out of range for n_classes={k}")
    out = np.full((y.size, int(k)), -1.0 / k)
    out[np.arange(y.size), y] += 1.0
    return out


def accuracy(pred, labels) -> float:
    """Fraction of rows where the predicted class equals the label.

    ``pred`` is (N, k) scores (class = argmax) or (N,) predicted labels; ``labels`` is (N,)
    labels or (N, k) (one-hot/centred one-hot, class = argmax).
    """
    p = _scores("pred", pred)
    p = np.argmax(p, axis=1) if p.ndim == 2 else _labels("pred", p)
    lab = np.asarray(labels)
    lab = np.argmax(_scores("labels", lab), axis=1) if lab.ndim == 2 else _labels("labels", lab)
    if p.shape != lab.shape:
        raise InputError(f"pred has {p.shape[0]} rows but labels has {lab.shape[0]}")
    return float(np.mean(p == lab))


def _paired(pred, target):
    p, t = _scores("pred", pred, (1, 2)), _scores("target", target, (1, 2))
    if p.shape != t.shape:
        raise InputError(f"pred shape {p.shape} does not match target shape {t.shape}")
    return p, t


def mae(pred, target) -> float:
    """Mean absolute error ``mean |pred − target|`` over all entries (shapes must match)."""
    p, t = _paired(pred, target)
    return float(np.mean(np.abs(p - t)))


def rmse(pred, target) -> float:
    """Root mean squared error ``sqrt(mean (pred − target)²)`` over all entries."""
    p, t = _paired(pred, target)
    return float(np.sqrt(np.mean((p - t) ** 2)))
