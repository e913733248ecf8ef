"""scikit-learn estimators and a Gaussian-process kernel on a kernelc spec.

An optional part of kernelc (``pip install 'kernelc[sklearn]'``): importing :mod:`kernelc` never
imports scikit-learn, and importing this module without it raises
:class:`~kernelc.errors.MissingDependencyError` (a :class:`KernelcError` and an ImportError).

* :class:`KernelRegressor` — the mean prediction of the infinitely wide network of ``spec``
  trained by gradient flow on the squared loss for a time ``t`` (the NTK; ``t=None`` is the
  limit ``t = ∞``, kernel regression) or the NNGP posterior mean.
* :class:`KernelClassifier` — the same on centred one-hot targets, predicting the argmax.
* :class:`KernelcKernel` — the spec's NNGP (or NTK) as a
  :class:`sklearn.gaussian_process.kernels.Kernel` for ``GaussianProcessRegressor``.

Inputs: scikit-learn passes 2-D arrays ``(n, n_features)``; the estimators reshape them to the
spec's input, ``(n, *box, channels)``, when ``n_features`` is the product of that shape (row-major,
channels last: ``x.reshape(n, -1)`` of image stacks), and also accept ``(n, *box, channels)``
(and ``(n, *box)`` for a single channel) as they are. Values are used as given (no 1/255 scaling).

Hyperparameters: ``spec`` is spec text or a path to a ``.kc`` file; ``constants={"ws": 1.2}``
overrides the values of its ``let`` constants (:func:`kernelc.frontend.parser.with_constants`),
and ``constants__ws`` is a parameter of its own, so ``GridSearchCV(est, {"constants__ws": [...]})``
searches over a spec constant such as a ``W_std``. Each distinct final spec text is compiled once
per process (:func:`compiled_network`); fitted estimators keep the text, not the compiled module,
so they pickle.

The linear algebra is :class:`kernelc.methods.predict.GradientFlowPredictor` (float64,
eigendecomposition with a relative ridge); nothing here repeats it.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Optional, Tuple

import numpy as np

from .errors import InputError, KernelcError, MissingDependencyError, SpecError, did_you_mean

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.exceptions import NotFittedError
    from sklearn.gaussian_process.kernels import Kernel
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import check_array, check_X_y
except ImportError:
    raise MissingDependencyError(
        "kernelc.sklearn needs scikit-learn (>= 1.3), which is not installed",
        suggestion="pip install 'kernelc[sklearn]'  (or: pip install 'scikit-learn>=1.3')") from None

from .frontend.parser import (parse_spec, read_spec_text, with_constants,  # noqa: E402
                               with_feature_input)
from .methods.predict import GradientFlowPredictor  # noqa: E402
from .methods.tasks import DEFAULT_MEMORY, DEFAULT_REG, prepare_inputs, solve_dtype  # noqa: E402

__all__ = ["KernelRegressor", "KernelClassifier", "KernelcKernel", "compiled_network",
           "EstimatorInputError", "EstimatorTypeError", "EstimatorNotFittedError"]

KERNELS = ("ntk", "nngp")
DTYPES = ("float32", "float64")
#: Compiled networks kept per process, keyed by final spec text (oldest dropped first).
MAX_CACHED_NETWORKS = 32
_COMPILED: "OrderedDict[str, object]" = OrderedDict()


class EstimatorInputError(InputError, ValueError):
    """Bad data or parameters handed to a kernelc estimator or kernel; also a ValueError, the
    exception scikit-learn's conventions (and its estimator checks) expect of validation."""


class EstimatorTypeError(InputError, TypeError):
    """Inputs of a type a kernelc estimator cannot take (sparse matrices, objects that are not
    numbers); also a TypeError, as scikit-learn's conventions expect."""


class EstimatorNotFittedError(KernelcError, NotFittedError):
    """``predict``/``score`` before ``fit``; also scikit-learn's NotFittedError."""


# --------------------------------------------------------------------------- specs
def final_spec_text(spec, constants: Optional[Mapping] = None,
                    n_features: Optional[int] = None) -> Tuple[str, str]:
    """``(text, filename)`` of ``spec`` (text, or a path to a ``.kc`` file) with its ``let``
    constants overridden by ``constants`` and, when it declares no ``input`` and
    ``n_features`` is given, the input ``1 x ... x 1 channels n_features`` (feature vectors)."""
    if not isinstance(spec, (str, Path)):
        raise SpecError(f"spec must be spec text or the path of a .kc file, got "
                        f"{type(spec).__name__}")
    if constants is not None and not isinstance(constants, Mapping):
        raise SpecError(f"constants must be a dict of spec constant names to numbers, got "
                        f"{constants!r}")
    text, filename = read_spec_text(spec)
    text = with_constants(text, dict(constants or {}), filename)
    if n_features is not None:
        text = with_feature_input(text, n_features, filename)
    return text, filename


def compiled_network(spec, constants: Optional[Mapping] = None,
                     n_features: Optional[int] = None):
    """The :class:`~kernelc.api.CompiledKernel` of :func:`final_spec_text`, compiled once per
    distinct final spec text and process (the last :data:`MAX_CACHED_NETWORKS` kept)."""
    return _compiled_text(*final_spec_text(spec, constants, n_features))


def _compiled_text(text: str, filename: str):
    net = _COMPILED.get(text)
    if net is None:
        from .api import compile as kc_compile
        net = kc_compile(parse_spec(text, filename))
        if net.typed.output_type.domain != "vector":
            raise SpecError(f"spec '{net.spec.name}' ends in {net.typed.output_type}, not a vector "
                            "of outputs; end it with group_pool/flatten and dense(k) to use it "
                            "as an estimator or kernel")
        _COMPILED[text] = net
        while len(_COMPILED) > MAX_CACHED_NETWORKS:
            _COMPILED.popitem(last=False)
    else:
        _COMPILED.move_to_end(text)
    return net


def _sample_shape(net) -> Tuple[int, ...]:
    return tuple(net.spec.input.shape) + (net.spec.input.channels,)


def _sklearn_checked(check, *args, **kwargs):
    """``check(*args, **kwargs)`` (scikit-learn's validation) with its ValueError/TypeError
    raised as :class:`EstimatorInputError`/:class:`EstimatorTypeError`, same message."""
    try:
        return check(*args, **kwargs)
    except TypeError as exc:  # sparse input, an object that is not a number
        raise EstimatorTypeError(str(exc)) from None
    except ValueError as exc:  # NaN/inf, 1-D, empty, inconsistent lengths, label types
        raise EstimatorInputError(str(exc)) from None


def _checked(X, owner: str, n_features: Optional[int] = None, what: str = "X") -> np.ndarray:
    """``X`` as a finite float64 array of at least 2 dimensions (scikit-learn's checks and
    wording), with ``n_features`` values per sample when given."""
    arr = _sklearn_checked(check_array, X, allow_nd=True, dtype=np.float64,
                           accept_sparse=False, input_name=what)
    if n_features is not None and _features(arr) != n_features:
        raise EstimatorInputError(f"{what} has {_features(arr)} features, but {owner} is "
                                  f"expecting {n_features} features as input")
    with np.errstate(over="ignore"):
        squares = np.sum(arr.reshape(len(arr), -1) ** 2, axis=1)
    if not np.all(np.isfinite(squares)):
        # the kernels see x·x'; beyond float64 the NNGP of erf came back as ±W_std² (predictions
        # 0) without a word
        raise EstimatorInputError(f"{what} has values too large for float64: the sum of squares "
                                  f"of a sample overflows (largest |value| "
                                  f"{np.abs(arr).max():.3g}); scale them down")
    return arr


def _features(arr: np.ndarray) -> int:
    return int(np.prod(arr.shape[1:]))


def _shaped(arr: np.ndarray, net, owner: str, what: str = "X") -> np.ndarray:
    """Checked inputs as ``(n, *box, channels)`` for ``net``: 2-D ``(n, prod(box)·channels)``
    rows are reshaped (row-major, channels last), shaped inputs are taken as they are."""
    shape = _sample_shape(net)
    if arr.ndim == 2 and len(shape) > 1 and arr.shape[1] == math.prod(shape):
        arr = arr.reshape((len(arr),) + shape)
    try:
        return prepare_inputs(arr, net, f"{what} of {owner}")
    except InputError as exc:
        raise EstimatorInputError(f"{exc.message}; or flattened, shape (N, {math.prod(shape)})") \
            from None


def _as_value_error(exc: InputError) -> EstimatorInputError:
    return EstimatorInputError(exc.message, suggestion=exc.suggestion)


def _real(value) -> Optional[float]:
    """``value`` as a float when it is a real number a float64 holds (not a bool, not complex:
    ``np.complex128`` is an ``np.number`` whose imaginary part ``float()`` drops); else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return None
    try:
        return float(value)
    except OverflowError:  # an int beyond float64
        return None


def _check_param_names(obj, params, owner: str) -> None:
    """Refuse names ``set_params`` cannot set: an unknown one (scikit-learn's ValueError carries
    the whole repr, spec text included) or ``NAME__SUB`` of a parameter that is no estimator (an
    AttributeError of str or dict inside scikit-learn)."""
    valid = sorted(obj.get_params(deep=False))
    for key in params:
        name, nested, _ = key.partition("__")
        if name not in valid:
            raise EstimatorInputError(f"invalid parameter {key!r} for {owner}", expected=valid,
                                      suggestion=did_you_mean(name, valid))
        if nested:
            raise EstimatorInputError(f"invalid parameter {key!r} for {owner}: {name} has no "
                                      "parameters of its own", expected=valid)


def _scored(score, X, y, sample_weight):
    """scikit-learn's ``score`` with the ValueError/TypeError of its metrics (y of another
    length, NaN, labels of another type) raised as :class:`EstimatorInputError`/
    :class:`EstimatorTypeError`; kernelc's own errors (predict's) pass unchanged."""
    try:
        return score(X, y, sample_weight=sample_weight)
    except KernelcError:
        raise
    except TypeError as exc:
        raise EstimatorTypeError(f"score(X, y): {exc}") from None
    except ValueError as exc:
        raise EstimatorInputError(f"score(X, y): {exc}") from None


# --------------------------------------------------------------------------- estimators
class _KernelcEstimator(BaseEstimator):
    """Shared parameters, ``constants__NAME`` parameters, fitting and the mean prediction."""

    def __init__(self, spec, *, kernel="ntk", t=None, ridge=DEFAULT_REG, constants=None,
                 dtype="float64", max_memory=DEFAULT_MEMORY):
        self.spec = spec
        self.kernel = kernel
        self.t = t
        self.ridge = ridge
        self.constants = constants
        self.dtype = dtype
        self.max_memory = max_memory

    # -- constants__NAME: one parameter per spec constant, for GridSearchCV -------------------
    def get_params(self, deep=True):
        """The constructor's parameters; with ``deep``, also ``constants__NAME`` for each entry
        of ``constants``."""
        params = super().get_params(deep=deep)
        if deep and isinstance(self.constants, Mapping):
            params.update({f"constants__{k}": v for k, v in self.constants.items()})
        return params

    def set_params(self, **params):
        """Set parameters; ``constants__NAME=value`` sets one entry of ``constants`` (a new dict:
        the one passed to the constructor is never modified)."""
        named = {key[len("constants__"):]: params.pop(key) for key in list(params)
                 if key.startswith("constants__")}
        _check_param_names(self, params, type(self).__name__)
        super().set_params(**params)
        if named:
            if self.constants is not None and not isinstance(self.constants, Mapping):
                raise SpecError(f"constants must be a dict of spec constant names to numbers, "
                                f"got {self.constants!r}")
            self.constants = {**(self.constants or {}), **named}
        return self

    # -- fitting --------------------------------------------------------------------------------
    def _validated_time(self) -> float:
        """Check the parameters (in fit, not in the constructor: scikit-learn's convention);
        the gradient-flow time, ∞ for t=None."""
        if self.kernel not in KERNELS:
            raise EstimatorInputError(f"kernel must be 'ntk' or 'nngp', got {self.kernel!r}")
        if self.dtype not in DTYPES:
            raise EstimatorInputError(f"dtype must be 'float32' or 'float64', got {self.dtype!r}")
        ridge = _real(self.ridge)
        if ridge is None or not math.isfinite(ridge) or ridge < 0:
            raise EstimatorInputError(f"ridge must be a finite number >= 0, got {self.ridge!r}")
        if self.t is None:
            return math.inf
        if self.kernel == "nngp":
            raise EstimatorInputError("t applies to the NTK (gradient-flow time); the NNGP "
                                      "posterior mean has none: leave t=None with kernel='nngp'")
        t = _real(self.t)
        if t is None or math.isnan(t) or t < 0:
            raise EstimatorInputError(f"t must be a number >= 0 (or None for t = ∞), got "
                                      f"{self.t!r}")
        return t

    def _fit_targets(self, X, targets):
        """Compile (cached), check X, the training Gram matrix and the predictor."""
        self._validated_time()
        owner = type(self).__name__
        arr = _checked(X, owner)
        text, filename = final_spec_text(self.spec, self.constants, _features(arr))
        net = _compiled_text(text, filename)
        x = _shaped(arr, net, owner)
        if len(x) < 2:
            raise EstimatorInputError(f"{owner} needs at least 2 training samples, got 1 sample")
        gram = net.kernel_fn(x, None, self.kernel, dtype=self.dtype, max_memory=self.max_memory)
        try:
            predictor = GradientFlowPredictor(solve_dtype(gram, self.ridge), targets,
                                              diag_reg=self.ridge)
        except InputError as exc:
            raise _as_value_error(exc) from None
        self.spec_text_, self.spec_filename_ = text, filename
        self.n_features_in_ = _features(arr)
        self.X_fit_ = x
        self.predictor_ = predictor
        return self

    def _mean(self, X) -> np.ndarray:
        """``f_t(X) = Θ(X, X_fit) V diag((1 − e^{−λt})/λ) Vᵀ y`` (``V, λ``: eigenpairs of the
        regularised training kernel; the NNGP K in place of Θ at t = ∞ for kernel="nngp")."""
        if not hasattr(self, "predictor_"):
            raise EstimatorNotFittedError(f"This {type(self).__name__} instance is not fitted "
                                          "yet. Call 'fit' with appropriate arguments before "
                                          "using this estimator.")
        owner = type(self).__name__
        arr = _checked(X, owner, n_features=self.n_features_in_)
        net = _compiled_text(self.spec_text_, self.spec_filename_)
        x = _shaped(arr, net, owner)
        cross = net.kernel_fn(x, self.X_fit_, self.kernel, dtype=self.dtype,
                              max_memory=self.max_memory)
        return self.predictor_.mean(cross, self._validated_time())


class KernelRegressor(RegressorMixin, _KernelcEstimator):
    """Regression with the infinite-width NTK or NNGP of a kernelc spec.

    ``kernel="ntk"``: the mean output of the infinitely wide network trained by gradient flow on
    ``L = ½ Σᵢ ‖f(xᵢ) − yᵢ‖²`` for time ``t`` (``t=None``: t = ∞, kernel regression)::

        f_t(x*) = Θ(x*, X) Θ_r⁻¹ (I − e^{−Θ_r t}) y,   Θ_r = Θ + ridge · mean(diag Θ) · I

    (``t`` in the units of that unnormalised loss with learning rate 1; directions with
    eigenvalue ≤ n·eps·λ_max are dropped, see :mod:`kernelc.methods.predict`).
    ``kernel="nngp"``: the posterior mean of the Bayesian infinite network,
    ``K(x*, X) (K + ridge · mean(diag K) · I)⁻¹ y`` (``t`` must stay None).

    Parameters: ``spec`` (spec text or a ``.kc`` path; it must end in a vector, e.g. ``dense(1)``),
    ``kernel``, ``t``, ``ridge`` (relative to the mean kernel diagonal; default 1e-4),
    ``constants`` (overrides of the spec's ``let`` constants; ``constants__NAME`` for searches),
    ``dtype`` of the kernel computation (``"float64"`` default; the solves are always float64),
    ``max_memory`` (the budget of the tiled kernel computation, e.g. ``"2GB"``).

    ``X``: ``(n, n_features)`` with ``n_features`` the size of the spec's input (reshaped to
    ``(n, *box, channels)``, channels last), or already shaped. ``y``: ``(n,)`` or ``(n, k)``.
    Fitted attributes: ``n_features_in_``, ``X_fit_`` (shaped inputs), ``predictor_``,
    ``spec_text_`` (the spec compiled, constants applied).
    """

    def fit(self, X, y):
        """Compute the training Gram matrix and decompose it; returns ``self``."""
        X, y = self._checked_xy(X, y)
        return self._fit_targets(X, y)

    def predict(self, X):
        """``f_t(X)``: ``(m,)`` for 1-D training targets, ``(m, k)`` for ``(n, k)`` ones."""
        return self._mean(X)

    def score(self, X, y, sample_weight=None):
        """R² of ``predict(X)`` against ``y`` (scikit-learn's)."""
        return _scored(super().score, X, y, sample_weight)

    @staticmethod
    def _checked_xy(X, y):
        X, y = _sklearn_checked(check_X_y, X, y, allow_nd=True, multi_output=True,
                                y_numeric=True, dtype=np.float64, accept_sparse=False)
        if y.dtype.kind not in "biuf":  # y_numeric converts only objects: dates were regressed
            raise EstimatorInputError(f"y must be real numbers for a regression, got dtype "
                                      f"{y.dtype}")
        return X, y

    def __sklearn_tags__(self):  # scikit-learn >= 1.6
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True  # y may be (n, k)
        return tags

    def _more_tags(self):  # scikit-learn < 1.6
        return {"multioutput": True}


class KernelClassifier(ClassifierMixin, _KernelcEstimator):
    """Classification by regression on centred one-hot targets with the infinite-width NTK or
    NNGP of a kernelc spec (the parameters, formula and ``X`` of :class:`KernelRegressor`).

    Each label becomes the row ``e_c − 1/k`` (k classes, :func:`kernelc.methods.metrics.one_hot`);
    the prediction is the class of the largest regressed score. ``classes_`` holds the sorted
    labels (any sortable labels: integers, strings).
    """

    def fit(self, X, y):
        """Compute the training Gram matrix on one-hot targets; returns ``self``."""
        from .methods.metrics import one_hot
        X, y = _sklearn_checked(check_X_y, X, y, allow_nd=True, dtype=np.float64,
                                accept_sparse=False)
        _sklearn_checked(check_classification_targets, y)
        classes, index = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise EstimatorInputError(f"{type(self).__name__} needs at least 2 classes, got 1 "
                                      f"class ({classes[0]})")
        self._fit_targets(X, one_hot(index, len(classes)))
        self.classes_ = classes
        return self

    def decision_function(self, X):
        """The regressed one-hot scores ``(m, k)``; for two classes the score of ``classes_[1]``
        ``(m,)`` (positive: ``classes_[1]``), scikit-learn's convention."""
        scores = self._mean(X)
        return scores[:, 1] if scores.shape[1] == 2 else scores

    def predict(self, X):
        """``classes_[argmax_c f_t(X)_c]``."""
        scores = self._mean(X)  # first: raises EstimatorNotFittedError before fit
        return self.classes_[np.argmax(scores, axis=1)]

    def score(self, X, y, sample_weight=None):
        """Accuracy of ``predict(X)`` against ``y`` (scikit-learn's)."""
        return _scored(super().score, X, y, sample_weight)


# --------------------------------------------------------------------------- GP kernel
class KernelcKernel(Kernel):
    """The NNGP (default) or NTK of a kernelc spec as a scikit-learn Gaussian-process kernel:
    ``k(x, x') = K(x, x')`` of the infinitely wide network (its output covariance).

    It has no hyperparameters that scikit-learn tunes (``hyperparameters == []``, ``theta`` is
    empty): a spec constant is fixed by ``constants=`` and searched by refitting, not by the GP
    marginal likelihood. ``__call__(X, eval_gradient=True)`` returns the gradient with respect to
    those zero hyperparameters, an ``(n, n, 0)`` array, the scikit-learn convention of fixed
    kernels, so sums such as ``KernelcKernel(spec) + WhiteKernel()`` optimise the other terms.
    ``X`` is ``(n, n_features)``, reshaped as by :class:`KernelRegressor`
    (``requires_vector_input``: GaussianProcessRegressor validates 2-D numeric arrays).
    """

    def __init__(self, spec, kernel="nngp", constants=None, dtype="float64",
                 max_memory=DEFAULT_MEMORY):
        self.spec = spec
        self.kernel = kernel
        self.constants = constants
        self.dtype = dtype
        self.max_memory = max_memory

    def _network(self, arr):
        if self.kernel not in KERNELS:
            raise EstimatorInputError(f"kernel must be 'ntk' or 'nngp', got {self.kernel!r}")
        if self.dtype not in DTYPES:
            raise EstimatorInputError(f"dtype must be 'float32' or 'float64', got {self.dtype!r}")
        return compiled_network(self.spec, self.constants, _features(arr))

    def __call__(self, X, Y=None, eval_gradient=False):
        """``K(X, Y)`` (``K(X, X)`` when Y is None) as float64 ``(n, m)``; with
        ``eval_gradient``, also the empty ``(n, n, 0)`` gradient (Y must be None)."""
        if eval_gradient and Y is not None:
            raise EstimatorInputError("Gradient can only be evaluated when Y is None.")
        a = _checked(X, "KernelcKernel")
        b = None if Y is None else _checked(Y, "KernelcKernel", _features(a), what="Y")
        net = self._network(a)
        x = _shaped(a, net, "KernelcKernel")
        y = None if b is None else _shaped(b, net, "KernelcKernel", what="Y")
        gram = np.asarray(net.kernel_fn(x, y, self.kernel, dtype=self.dtype,
                                        max_memory=self.max_memory), np.float64)
        if eval_gradient:
            return gram, np.empty((len(x), len(x), 0))
        return gram

    def diag(self, X):
        """``K(x, x)`` for each row of X, ``(n,)``: one 1×1 Gram matrix per input (the diagonal
        alone, not the n × n matrix)."""
        a = _checked(X, "KernelcKernel")
        net = self._network(a)
        x = _shaped(a, net, "KernelcKernel")
        return np.array([float(net.kernel_fn(x[i:i + 1], None, self.kernel, dtype=self.dtype,
                                             max_memory=self.max_memory)[0, 0])
                         for i in range(len(x))])

    def set_params(self, **params):
        """Set parameters (scikit-learn's), unknown or nested names refused."""
        _check_param_names(self, params, type(self).__name__)
        return super().set_params(**params)

    def is_stationary(self):
        """False: K(x, x') depends on x and x', not only on x − x'."""
        return False

    @property
    def requires_vector_input(self):
        return True

    def __repr__(self):
        name = self.spec if isinstance(self.spec, Path) or (
            isinstance(self.spec, str) and "\n" not in self.spec and len(self.spec) < 60) \
            else "<spec text>"
        extra = f", constants={self.constants!r}" if self.constants else ""
        return f"KernelcKernel({str(name)!r}, kernel={self.kernel!r}{extra})"
