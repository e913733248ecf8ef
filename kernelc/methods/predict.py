"""Predictions of infinitely wide networks from precomputed Gram matrices.

Nothing here knows about the compiler: the inputs are plain arrays (``Θ`` = NTK, ``K`` = NNGP)
and training targets. All linear algebra is float64.

Conventions
-----------
* Training is gradient flow (learning rate 1) on the *unnormalised* loss
  ``L = ½ Σ_i ‖f(x_i) − y_i‖²``, so on the training set ``df/dt = −Θ (f − y)``. With the initial
  mean output zero, the mean prediction at a test point x* is::

      f_t(x*) = Θ*ᵀ Θ⁻¹ (I − e^{−Θ t}) y        (Θ* = Θ(X, x*), i.e. k_test_train row)

  ``t = ∞`` is kernel regression ``Θ*ᵀ Θ⁻¹ y``; ``t = 0`` gives zeros. neural-tangents'
  ``gradient_descent_mse`` normalises the loss by ``y_train.size`` instead: its time ``t_nt`` at
  learning rate ``η`` equals our ``t = η · t_nt / y_train.size``.
* ``diag_reg`` adds ``diag_reg · mean(diag Θ) · I`` to the training kernel (neural-tangents'
  ``diag_reg_absolute_scale=False``), so the regulariser is relative to the kernel's scale;
  ``diag_reg_absolute_scale=True`` adds ``diag_reg · I`` instead. The same rule is applied to the
  NNGP training kernel with its own mean diagonal.
* Negative eigenvalues: a computed Gram matrix can have λ_min < 0 (an SO(3) grid's aliasing,
  round-off; :mod:`kernelc.runtime.psd`). A positive ridge is raised to ``RIDGE_MARGIN`` ·
  |λ_min| (10×) when it would not cover it, with an ``IndefiniteKernelWarning`` giving the
  numbers, so (Θ + ridge)⁻¹ never amplifies that error by more than ~1/9 of 1/|λ_min|.
* Eigen-cutoff: Θ + reg = V diag(λ) Vᵀ is computed once (``numpy.linalg.eigh``). Directions with
  ``λ ≤ rcond · λ_max`` (default ``rcond = n · eps`` of the input dtype, the
  ``numpy.linalg.matrix_rank`` rule) are dropped at *every* t, i.e. Θ⁻¹ is a pseudo-inverse.
  For a genuine Gram pair a null vector v of Θ has Θ* v = 0, so these directions carry only
  round-off; keeping them would make ``(1 − e^{−λt})/λ`` explode for noisy negative λ.
"""
from __future__ import annotations

import numbers
import warnings
from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np
import scipy.linalg  # a dependency of jax, so always present

from ..errors import IndefiniteKernelWarning, InputError

# An eigenvalue below -_NEG_TOL · λ_max cannot be round-off of a positive semi-definite kernel.
_NEG_TOL = 1e-3
# A positive ridge is at least this multiple of |λ_min| of a training kernel with a negative
# eigenvalue (aliasing or round-off, kernelc.runtime.psd), so that Θ + ridge stays positive
# definite by a margin and (Θ + ridge)⁻¹ does not amplify that error: see _cover_negative.
RIDGE_MARGIN = 10.0
# Jitter tried (relative to mean(diag K)) when the NNGP Cholesky fails, smallest first.
_JITTERS = (1e-10, 1e-8, 1e-6)


# --------------------------------------------------------------------------- validation
def _as_array(name: str, a, ndims) -> np.ndarray:
    """``a`` as a finite float64 array with ``a.ndim in ndims``, else InputError."""
    if a is None:
        raise InputError(f"{name} is missing")
    if np.iscomplexobj(a):  # the cast below would drop the imaginary part (a warning only)
        raise InputError(f"{name} must hold real numbers, got a complex array")
    try:
        arr = np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name} is not a numeric array ({exc})") from None
    if arr.ndim not in ndims:
        want = " or ".join(f"{d}-D" for d in ndims)
        raise InputError(f"{name} must be {want}, got shape {arr.shape}")
    bad = ~np.isfinite(arr)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        kind = "NaN" if np.isnan(arr[where]) else "inf"
        raise InputError(f"{name} contains {int(bad.sum())} NaN/inf value(s); first is {kind} at index {where}")
    return arr


def _eps_of(a) -> float:
    """Machine epsilon of the dtype ``a`` came in (float32 kernels carry float32 round-off)."""
    dt = getattr(a, "dtype", None)
    return float(np.finfo(dt).eps) if dt is not None and np.issubdtype(dt, np.floating) else float(np.finfo(np.float64).eps)


def _train_kernel(name: str, a) -> np.ndarray:
    """Validate a square, symmetric training Gram matrix with n >= 2 and symmetrise it exactly."""
    k = _as_array(name, a, (2,))
    if k.shape[0] != k.shape[1]:
        raise InputError(f"{name} must be square (n, n), got shape {k.shape}")
    if k.shape[0] < 2:
        raise InputError(f"{name} has {k.shape[0]} training point(s); at least 2 are needed")
    # Tolerance sqrt(eps) of the input dtype: loose enough for kernels summed in float32 in
    # another order, tight enough to catch a test-train block passed by mistake.
    tol = np.sqrt(_eps_of(a)) * max(np.abs(k).max(), np.finfo(np.float64).tiny)
    asym = np.abs(k - k.T).max()
    if asym > tol:
        i, j = np.unravel_index(np.argmax(np.abs(k - k.T)), k.shape)
        raise InputError(f"{name} is not symmetric: |K[{i},{j}] - K[{j},{i}]| = {asym:.3g} > tolerance {tol:.3g}")
    return 0.5 * (k + k.T)


def _check_reg(diag_reg) -> float:
    try:
        r = float(diag_reg)
    except (TypeError, ValueError):
        raise InputError(f"diag_reg must be a number, got {diag_reg!r}") from None
    if not np.isfinite(r) or r < 0:
        raise InputError(f"diag_reg must be finite and >= 0, got {diag_reg!r}")
    return r


def _regularise(k: np.ndarray, diag_reg: float, absolute: bool) -> np.ndarray:
    """K + diag_reg · s · I with s = 1 (absolute) or mean(diag K) (relative, the default)."""
    if diag_reg == 0.0:
        return k
    scale = 1.0 if absolute else float(np.mean(np.diag(k)))
    return k + diag_reg * scale * np.eye(k.shape[0])


def _check_times(t):
    """(times as 1-D float64 array, whether t was a scalar). Allowed: t >= 0, including +inf."""
    try:
        arr = np.asarray(t, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"t must be a number or a 1-D array of numbers, got {t!r}") from None
    if arr.ndim > 1:
        raise InputError(f"t must be a scalar or 1-D array of times, got shape {arr.shape}")
    if np.isnan(arr).any():
        raise InputError("t contains NaN")
    if (arr < 0).any():
        raise InputError(f"training time t must be >= 0, got {arr[arr < 0][0]:g}")
    return np.atleast_1d(arr), arr.ndim == 0


def _test_block(name: str, a, n: int) -> np.ndarray:
    k = _as_array(name, a, (1, 2))
    if k.ndim == 1 or k.shape[1] != n:
        hint = "; for a single test point use reshape(1, -1)" if k.shape == (n,) else ""
        raise InputError(f"{name} must be 2-D with shape (m, {n}) to match the {n} training points, "
                         f"got {k.shape}{hint}")
    return k


# --------------------------------------------------------------------------- results
@dataclass
class GaussianPosterior:
    """An NNGP posterior: ``mean`` (m,) or (m, k); ``var`` (m,) or ``cov`` (m, m) — the
    covariance is the same for every output column. ``jitter`` is the absolute value added to the
    diagonal to make the Cholesky succeed (0.0 when none was needed); ``warnings`` says so."""

    mean: np.ndarray
    var: Optional[np.ndarray] = None
    cov: Optional[np.ndarray] = None
    jitter: float = 0.0
    warnings: List[str] = field(default_factory=list)


# --------------------------------------------------------------------------- predictor
class GradientFlowPredictor:
    """Mean prediction of an infinitely wide network trained by MSE gradient flow, and the NNGP
    posterior. See the module docstring for the loss, ``diag_reg`` and eigen-cutoff conventions.

    ``k_train_train`` is the NTK Θ (n, n); ``y_train`` is (n,) or (n, k); the optional
    ``nngp_train_train`` K (n, n) is needed only for :meth:`nngp_posterior`.
    """

    def __init__(self, k_train_train, y_train, *, nngp_train_train=None, diag_reg: float = 0.0,
                 diag_reg_absolute_scale: bool = False, rcond: Optional[float] = None):
        theta = _train_kernel("k_train_train", k_train_train)
        n = theta.shape[0]
        y = _as_array("y_train", y_train, (1, 2))
        if y.shape[0] != n:
            raise InputError(f"y_train has {y.shape[0]} rows but k_train_train has {n} training points")
        self.n = n
        self.y_train = y
        self.diag_reg = _check_reg(diag_reg)
        self.absolute = bool(diag_reg_absolute_scale)
        self._nngp = None if nngp_train_train is None else _train_kernel("nngp_train_train", nngp_train_train)
        if self._nngp is not None and self._nngp.shape[0] != n:
            raise InputError(f"nngp_train_train has shape {self._nngp.shape}, expected ({n}, {n})")
        self._chol = None  # NNGP Cholesky factor and jitter, computed on first use

        evals, evecs = np.linalg.eigh(_regularise(theta, self.diag_reg, self.absolute))
        lam_max = evals[-1]
        if lam_max <= 0:
            raise InputError("k_train_train has no positive eigenvalue; it is not a valid NTK Gram matrix")
        if evals[0] < -_NEG_TOL * lam_max:
            raise InputError(f"k_train_train is not positive semi-definite: smallest eigenvalue {evals[0]:.3g} "
                             f"vs largest {lam_max:.3g}; check the kernel or increase diag_reg")
        evals = self._cover_negative(theta, evals, k_train_train)
        lam_max = evals[-1]
        if rcond is None:
            rcond = n * _eps_of(k_train_train)
        elif isinstance(rcond, bool) or not isinstance(rcond, numbers.Real) \
                or not (np.isfinite(rcond) and 0 <= rcond < 1):
            raise InputError(f"rcond must be in [0, 1), got {rcond!r}")
        keep = evals > rcond * lam_max
        self.rcond = float(rcond)
        self.eigenvalues = evals            # all of them, for diagnostics
        self.n_dropped = int((~keep).sum())  # directions treated as the kernel's null space
        self._lam = evals[keep]
        self._vecs = evecs[:, keep]
        # y in the kept eigenbasis, (r, k); reused for every time and test set.
        self._coef = self._vecs.T @ (y if y.ndim == 2 else y[:, None])

    def _cover_negative(self, theta, evals, k_in):
        """Eigenvalues of Θ + ridge with the ridge raised, when it is positive, to
        RIDGE_MARGIN · |λ_min(Θ)| if Θ has a negative eigenvalue it does not cover (a warning
        says so, with the numbers); ``diag_reg = 0`` (no ridge) is kept: the eigen-cutoff drops
        those directions. Adding a multiple of I shifts every eigenvalue, so the eigenvectors
        stay; ``self.ridge`` is the absolute ridge used."""
        shift = 0.0
        if self.diag_reg > 0:
            shift = self.diag_reg * (1.0 if self.absolute else float(np.mean(np.diag(theta))))
        self.ridge = shift
        low = float(evals[0]) - shift  # λ_min of Θ itself
        if shift == 0.0 or low >= 0 or shift >= RIDGE_MARGIN * -low:
            return evals
        from ..runtime.psd import psd_threshold
        lam_max = float(evals[-1]) - shift
        dtype = "float32" if _eps_of(k_in) > 1e-10 else "float64"
        beyond = low < -psd_threshold(len(evals), dtype) * lam_max
        self.ridge = RIDGE_MARGIN * -low
        warnings.warn(
            f"the training kernel has a negative eigenvalue {low:.3g} (λ_max {lam_max:.4g}"
            + (", beyond its stated accuracy: see the IndefiniteKernelWarning of kernel_fn"
               if beyond else ", within its stated accuracy") +
            f"); the ridge {shift:.3g} would not cover it, so it is raised to "
            f"{RIDGE_MARGIN:g}·|λ_min| = {self.ridge:.3g}. Pass a larger diag_reg to choose it "
            f"yourself", IndefiniteKernelWarning, stacklevel=3)
        return evals + (self.ridge - shift)

    # ---- gradient flow mean
    def mean(self, k_test_train, t=np.inf) -> np.ndarray:
        """``f_t(x*) = Θ*ᵀ V diag(g(λ, t)) Vᵀ y`` with ``g = −expm1(−λt)/λ`` (→ 1/λ at t = ∞).

        ``k_test_train`` is (m, n). Returns (m,) or (m, k) following ``y_train``, with a leading
        (len(t),) axis when ``t`` is an array. expm1 keeps ``g ≈ t`` accurate when λt is tiny.
        """
        times, scalar = _check_times(t)
        kx = _test_block("k_test_train", k_test_train, self.n)
        with np.errstate(over="ignore"):  # λ·inf = inf is intended: expm1(-inf) = -1
            g = -np.expm1(-np.outer(times, self._lam)) / self._lam   # (T, r)
        out = np.einsum("mr,tr,rk->tmk", kx @ self._vecs, g, self._coef)
        if self.y_train.ndim == 1:
            out = out[..., 0]
        return out[0] if scalar else out

    def ntk_gp_covariance(self, k_test_train, nngp_test_train, nngp_test_test) -> np.ndarray:
        """Covariance over random initialisations of the network trained to ``t = ∞``
        (Lee et al. 2019, the NTK-GP), with ``A = Θ*ᵀ Θ⁻¹`` (same pseudo-inverse as :meth:`mean`)::

            Σ = K** + A K Aᵀ − A K*ᵀ − K* Aᵀ

        K is the *unregularised* NNGP training kernel (the prior covariance of f_0; ``diag_reg``
        enters only through Θ⁻¹). ``nngp_test_test`` (m,) → the diagonal of Σ
        (round-off negatives clipped to 0); (m, m) → all of Σ.
        """
        if self._nngp is None:
            raise InputError("ntk_gp_covariance needs the NNGP training kernel: pass nngp_train_train= "
                             "when constructing GradientFlowPredictor")
        kx = _test_block("k_test_train", k_test_train, self.n)
        ks = _test_block("nngp_test_train", nngp_test_train, self.n)
        m = kx.shape[0]
        if ks.shape[0] != m:
            raise InputError(f"nngp_test_train has {ks.shape[0]} test rows but k_test_train has {m}")
        kss = _as_array("nngp_test_test", nngp_test_test, (1, 2))
        if kss.shape not in ((m,), (m, m)):
            raise InputError(f"nngp_test_test must be ({m},) or ({m}, {m}), got {kss.shape}")
        a = ((kx @ self._vecs) / self._lam) @ self._vecs.T      # (m, n)
        ak = a @ self._nngp
        if kss.ndim == 1:
            return np.maximum(kss + np.sum(ak * a, axis=1) - 2.0 * np.sum(a * ks, axis=1), 0.0)
        cross = a @ ks.T
        cov = kss + ak @ a.T - cross - cross.T
        return 0.5 * (cov + cov.T)

    # ---- NNGP posterior
    def _cholesky(self):
        """Cholesky of K + reg, retrying with relative jitter from _JITTERS before giving up."""
        if self._chol is None:
            if self._nngp is None:
                raise InputError("nngp_posterior needs the NNGP training kernel: pass nngp_train_train= "
                                 "when constructing GradientFlowPredictor")
            k = _regularise(self._nngp, self.diag_reg, self.absolute)
            scale = float(np.mean(np.diag(k)))
            for jitter in (0.0,) + tuple(j * scale for j in _JITTERS):
                try:
                    factor = scipy.linalg.cho_factor(k + jitter * np.eye(self.n), lower=True)
                except np.linalg.LinAlgError:
                    continue
                self._chol = (factor, jitter)
                break
            else:
                raise InputError("nngp_train_train (+ diag_reg) is not positive definite even with jitter "
                                 f"{_JITTERS[-1]:g}·mean(diag); pass diag_reg > 0 (e.g. 1e-4)")
        return self._chol

    def nngp_posterior(self, nngp_test_train, nngp_test_test) -> GaussianPosterior:
        """Exact GP posterior with prior covariance K (the Bayesian infinite network)::

            mean = K*ᵀ (K + reg)⁻¹ y,   cov = K** − K*ᵀ (K + reg)⁻¹ K*

        ``nngp_test_test`` is the (m,) diagonal (→ ``var``) or the full (m, m) matrix (→ ``cov``).
        Variances below zero by round-off are clipped to 0.
        """
        (factor, jitter) = self._cholesky()
        ks = _test_block("nngp_test_train", nngp_test_train, self.n)
        m = ks.shape[0]
        kss = _as_array("nngp_test_test", nngp_test_test, (1, 2))
        if kss.shape not in ((m,), (m, m)):
            raise InputError(f"nngp_test_test must be the diagonal ({m},) or the full ({m}, {m}) matrix "
                             f"for {m} test points, got {kss.shape}")
        mean = ks @ scipy.linalg.cho_solve(factor, self.y_train)
        v = scipy.linalg.solve_triangular(factor[0], ks.T, lower=True)   # L⁻¹ K*ᵀ, (n, m)
        notes = [f"NNGP train kernel not positive definite; added jitter {jitter:.3g} to its diagonal"] if jitter else []
        if kss.ndim == 1:
            return GaussianPosterior(mean, var=np.maximum(kss - np.sum(v * v, axis=0), 0.0),
                                     jitter=jitter, warnings=notes)
        cov = kss - v.T @ v
        cov = 0.5 * (cov + cov.T)
        return GaussianPosterior(mean, cov=cov, jitter=jitter, warnings=notes)


def predict(k_train_train, k_test_train, y_train, t=np.inf, diag_reg: float = 0.0) -> np.ndarray:
    """One-shot gradient-flow mean prediction ``Θ*ᵀ Θ⁻¹ (I − e^{−Θt}) y`` (kernel regression at
    the default ``t = ∞``). Build a :class:`GradientFlowPredictor` to reuse the eigendecomposition."""
    return GradientFlowPredictor(k_train_train, y_train, diag_reg=diag_reg).mean(k_test_train, t)


#: the solvers of kernel regression: "dense" (GradientFlowPredictor: eigendecomposition, every
#: t), "cg" (ConjugateGradientRegressor: t = ∞, reads the kernel by blocks), "auto" (cg above
#: solvers.DENSE_LIMIT training points)
SOLVERS = ("auto", "dense", "cg")


def choose_solver(solver: str, n: int) -> str:
    """"dense" or "cg" for ``n`` training points: ``solver`` itself, "auto" -> "cg" when
    n > :data:`kernelc.methods.solvers.DENSE_LIMIT` (read at call time)."""
    from . import solvers
    if solver not in SOLVERS:
        raise InputError(f"solver must be 'auto', 'dense' or 'cg', got {solver!r}")
    return "cg" if solver == "cg" or (solver == "auto" and n > solvers.DENSE_LIMIT) else "dense"


class ConjugateGradientRegressor:
    """Kernel regression (the t = ∞ gradient-flow mean) and the NNGP posterior without a dense
    factorisation: every solve is :func:`kernelc.methods.solvers.solve_regularised`
    (pivoted-Cholesky-preconditioned CG to relative residual ``tol``, refused with a
    SolverError naming the residual reached), reading the training kernels by blocks of rows,
    so they may be memory-mapped Gram matrices on disk (``kernel_fn(out=FOLDER)``)::

        mean(Θ*) = Θ* α,  α = (Θ + r_Θ I)⁻¹ y,   r = diag_reg · mean(diag) (relative ridge)
        NNGP: mean = K* β, β = (K + r_K I)⁻¹ y;  var_i = K**_ii − K*_i (K + r_K I)⁻¹ K*_iᵀ

    The ridge must be positive (CG's convergence rests on it); no eigen-cutoff and no jitter
    as in :class:`GradientFlowPredictor`. ``solves`` lists the CGResult of every solve."""

    def __init__(self, k_train_train, y_train, *, nngp_train_train=None,
                 diag_reg: float = 1e-4, tol: float = 1e-6, rank: int = 200,
                 max_iter: Optional[int] = None):
        from .solvers import solve_regularised
        self._solve = lambda k, rhs, shift: solve_regularised(k, rhs, shift, tol=tol, rank=rank,
                                                              max_iter=max_iter)
        self.diag_reg = _check_reg(diag_reg)
        if self.diag_reg == 0:
            raise InputError("the conjugate-gradient solver needs a positive ridge (diag_reg > 0, "
                             "CLI --reg): its convergence rests on it")
        _check_cg_options(tol, rank, max_iter)
        k_train_train = _block_kernel("k_train_train", k_train_train)
        self.n = k_train_train.shape[0]
        self.y_train = _as_array("y_train", y_train, (1, 2))
        if self.y_train.shape[0] != self.n:
            raise InputError(f"y_train has {self.y_train.shape[0]} rows but k_train_train has "
                             f"{self.n} training points")
        self._nngp = None if nngp_train_train is None else \
            _block_kernel("nngp_train_train", nngp_train_train)
        if self._nngp is not None and self._nngp.shape[0] != self.n:
            raise InputError(f"nngp_train_train has shape {self._nngp.shape}, expected "
                             f"({self.n}, {self.n})")
        self.solves = []
        self._alpha = self._run(k_train_train, self.y_train)

    def _run(self, k, rhs):
        shift = self.diag_reg * float(np.mean(np.asarray(np.diagonal(k), np.float64)))
        result = self._solve(k, rhs, shift)
        self.solves.append(result)
        return result.alpha

    def mean(self, k_test_train) -> np.ndarray:
        """Θ* (Θ + r I)⁻¹ y for ``k_test_train`` (m, n): (m,) or (m, k) like ``y_train``."""
        return _test_block("k_test_train", k_test_train, self.n) @ self._alpha

    def nngp_posterior(self, nngp_test_train, nngp_test_test=None) -> GaussianPosterior:
        """The NNGP posterior mean and, with the (m,) prior variances ``nngp_test_test``, the
        variances (one CG solve with the m columns K*ᵀ as extra right-hand sides)."""
        if self._nngp is None:
            raise InputError("nngp_posterior needs the NNGP training kernel: pass "
                             "nngp_train_train=")
        ks = _test_block("nngp_test_train", nngp_test_train, self.n)
        y = self.y_train if self.y_train.ndim == 2 else self.y_train[:, None]
        if nngp_test_test is None:
            beta = self._run(self._nngp, y)
            mean = ks @ beta
            return GaussianPosterior(mean if self.y_train.ndim == 2 else mean[:, 0])
        kss = _as_array("nngp_test_test", nngp_test_test, (1,))
        if kss.shape != (ks.shape[0],):
            raise InputError(f"nngp_test_test must be the ({ks.shape[0]},) prior variances, got "
                             f"{kss.shape}")
        solved = self._run(self._nngp, np.concatenate([y, ks.T], axis=1))
        mean = ks @ solved[:, :y.shape[1]]
        var = np.maximum(kss - np.sum(ks * solved[:, y.shape[1]:].T, axis=1), 0.0)
        return GaussianPosterior(mean if self.y_train.ndim == 2 else mean[:, 0], var=var)


def _check_cg_options(tol, rank, max_iter) -> None:
    """The conjugate-gradient solver's options, checked before any solve."""
    if isinstance(tol, bool) or not isinstance(tol, numbers.Real) or not 0 < tol < 1:
        raise InputError(f"tol must be a number in (0, 1), got {tol!r}")
    if isinstance(rank, bool) or not isinstance(rank, numbers.Integral) or rank < 0:
        raise InputError(f"rank (of the preconditioner) must be an integer >= 0, got {rank!r}")
    if max_iter is not None and (isinstance(max_iter, bool)
                                 or not isinstance(max_iter, numbers.Integral) or max_iter < 0):
        raise InputError(f"max_iter must be an integer >= 0 or None, got {max_iter!r}")


#: entries of a training kernel sampled for the symmetry check of the CG path (which reads a
#: memory-mapped kernel by blocks of rows, so it does not compare K with Kᵀ whole)
_SYMMETRY_SAMPLES = 4096


def _block_kernel(name: str, k):
    """A training kernel for the CG path: a list becomes a validated float64 array; an array
    (memory-mapped too) is kept, its dtype, shape and values checked by blocks of rows (NaN/inf,
    positive mean diagonal) and its symmetry on sampled entries, before any solve."""
    if not hasattr(k, "shape") or not hasattr(k, "dtype"):  # a list: checked whole
        k = _as_array(name, k, (2,))
    if len(k.shape) != 2 or k.shape[0] != k.shape[1]:
        raise InputError(f"{name} must be square (n, n), got shape {tuple(k.shape)}")
    if np.dtype(k.dtype).kind not in "iuf":
        raise InputError(f"{name} must hold real numbers, got dtype {k.dtype}")
    n = k.shape[0]
    if n == 0:
        raise InputError(f"{name} has no training points")
    for a in range(0, n, 2048):
        if not np.all(np.isfinite(np.asarray(k[a:a + 2048]))):
            raise InputError(f"{name} contains NaN or inf values (in rows {a}..."
                             f"{min(a + 2048, n) - 1})")
    diag = np.asarray(np.diagonal(k), np.float64)
    if not np.mean(diag) > 0:
        raise InputError(f"{name} has a mean diagonal {np.mean(diag):.3g} <= 0; it is not a "
                         "valid kernel Gram matrix")
    rng = np.random.default_rng(0)
    I = np.sort(rng.integers(0, n, min(_SYMMETRY_SAMPLES, n * n)))
    J = rng.integers(0, n, len(I))
    kij = np.asarray([k[i, j] for i, j in zip(I, J)], np.float64)
    kji = np.asarray([k[j, i] for i, j in zip(I, J)], np.float64)
    tol = np.sqrt(_eps_of(k)) * max(float(np.abs(diag).max()), np.finfo(np.float64).tiny)
    if np.any(np.abs(kij - kji) > tol):
        p = int(np.argmax(np.abs(kij - kji)))
        raise InputError(f"{name} is not symmetric: |K[{I[p]},{J[p]}] - K[{J[p]},{I[p]}]| = "
                         f"{abs(kij[p] - kji[p]):.3g} > tolerance {tol:.3g}")
    return k


def kernel_regression(k_train_train, k_test_train, y_train, diag_reg: float = 1e-4, *,
                      solver: str = "auto", tol: float = 1e-6, rank: int = 200) -> np.ndarray:
    """Kernel regression (the t = ∞ predictor) Θ*ᵀ (Θ + r·I)⁻¹ y, r = diag_reg · mean(diag Θ),
    with ``solver`` "dense" (:func:`predict`: eigendecomposition, pseudo-inverse cutoff) or
    "cg" (:class:`ConjugateGradientRegressor`: pivoted-Cholesky-preconditioned conjugate
    gradients to relative residual ``tol``, reading Θ by blocks, so Θ may be a memory-mapped
    Gram matrix); "auto" takes cg above ``solvers.DENSE_LIMIT`` training points
    (:func:`choose_solver`).
    """
    if not hasattr(k_train_train, "shape"):
        k_train_train = _as_array("k_train_train", k_train_train, (2,))
    if choose_solver(solver, k_train_train.shape[0] if k_train_train.shape else 0) == "dense":
        return predict(k_train_train, k_test_train, y_train, np.inf, diag_reg)
    return ConjugateGradientRegressor(k_train_train, y_train, diag_reg=diag_reg, tol=tol,
                                      rank=rank).mean(k_test_train)
