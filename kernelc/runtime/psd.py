"""Positive semi-definiteness of Gram matrices, checked (numpy only).

An NNGP or NTK Gram matrix K of one input set with itself is positive semi-definite exactly. A
computed one is off by its discretisation (the SO(3) grid quadrature aliases through relu,
docs/so3.md) and by round-off, and a negative eigenvalue of K then meets a ridge of the same
size in a solver: (K + r I)⁻¹ amplifies it without bound. :func:`check_gram` reports

    λ_min < −tol · λ_max,   tol = max(PSD_TOLERANCE[dtype], n · eps(dtype))

(the second term is the ``numpy.linalg.matrix_rank`` round-off rule) with an
:class:`IndefiniteKernelWarning` that gives λ_min, λ_max and the count of such eigenvalues.

Cost: a Cholesky factorisation of K + tol·λ_max·I (n³/3 flops) certifies the common case; only
when it fails are the eigenvalues computed (``eigvalsh``, ~10× more) for the message. λ_max
comes from a few power iterations (it needs only ~10% accuracy: it sets the threshold). A Gram
matrix of n inputs costs n²/2 kernel pairs of hundreds (MLP) to millions (SO(3)) of flops, so
n³/3 ≤ 3e9 flops (~0.1 s) stays a small part of it up to n = MAX_CHECKED = 2,048; above, the
factorisation would grow as n³ against the Gram's n² and can cost more than a cheap (MLP) Gram
matrix itself, so kernel_fn skips it: call :func:`check_gram` yourself on a matrix you hold.
"""
import warnings

import numpy as np

from kernelc.runtime.errors import IndefiniteKernelWarning

__all__ = ["PSD_TOLERANCE", "MAX_CHECKED", "psd_threshold", "lowest_eigenvalues", "check_gram",
           "check_grams"]

#: λ_min / λ_max below −tol is reported (before the round-off floor n·eps): in float64 1e-6,
#: above what the default SO(3) grids leave (their entries are accurate to ~3e-5, and their
#: negative eigenvalues measure ~2e-8 λ_max on QM9 atoms; docs/so3.md) and far below what a
#: user's ridge covers; float32 kernels carry ~1e-4 relative round-off near correlation 1
#: (relu's NTK, docs/precision.md).
PSD_TOLERANCE = {"float64": 1e-6, "float32": 1e-4}

#: Largest n checked by kernel_fn (module docstring: the check's n³ against the Gram's n²).
MAX_CHECKED = 2048


def psd_threshold(n, dtype):
    """tol of the module docstring for an n × n Gram matrix computed in ``dtype``."""
    name = str(np.dtype(dtype))
    return max(PSD_TOLERANCE.get(name, PSD_TOLERANCE["float32"]), n * np.finfo(name).eps)


def _largest_eigenvalue(k, iterations=30):
    """λ_max of a symmetric K by power iteration from the all-ones vector plus the diagonal
    bound (λ_max ≥ max diag): a lower bound within a few % for Gram matrices, whose top
    eigenvector is close to positive."""
    v = np.ones(k.shape[0]) / np.sqrt(k.shape[0])
    lam = 0.0
    for _ in range(iterations):
        w = k @ v
        lam = float(v @ w)
        norm = np.linalg.norm(w)
        if norm == 0:
            break
        v = w / norm
    return max(lam, float(np.max(np.diag(k))))


def lowest_eigenvalues(k, tol):
    """(λ_min, λ_max, count of λ < −tol·λ_max) of a symmetric K, by ``eigvalsh``."""
    ev = np.linalg.eigvalsh(k)
    return float(ev[0]), float(ev[-1]), int(np.sum(ev < -tol * ev[-1]))


def check_gram(gram, dtype, name="Gram matrix", stacklevel=3, max_checked=MAX_CHECKED):
    """Warn (IndefiniteKernelWarning) when the symmetric n × n ``gram`` has an eigenvalue below
    −tol·λ_max (module docstring); returns (λ_min, λ_max, count) then, else None (also when
    skipped: not square 2-d, or n > max_checked)."""
    k = np.asarray(gram)
    if k.ndim != 2 or k.shape[0] != k.shape[1] or k.shape[0] < 2 or k.shape[0] > max_checked:
        return None
    k = np.asarray(k, np.float64)
    k = (k + k.T) / 2  # symmetric=False leaves round-off asymmetry; the check is on the symmetric part
    n = k.shape[0]
    tol = psd_threshold(n, dtype)
    lam_max = _largest_eigenvalue(k)
    if not lam_max > 0:
        return None  # a zero kernel (or NaN, refused by kernel_fn before this)
    try:  # succeeds iff K + tol·λ_max·I > 0, i.e. no eigenvalue below −tol·λ_max
        np.linalg.cholesky(k + tol * lam_max * np.eye(n))
        return None
    except np.linalg.LinAlgError:
        pass
    low, high, count = lowest_eigenvalues(k, tol)
    if count == 0:  # Cholesky failed at the margin (λ_max underestimated): nothing to report
        return None
    warnings.warn(
        f"the {name} is not positive semi-definite beyond its stated accuracy: {count} "
        f"eigenvalue(s) below −{tol:.0e}·λ_max, the lowest {low:.3g} against λ_max = {high:.4g} "
        f"(ratio {low / high:.1e}). For an SO(3) network this is the grid's aliasing: use the "
        f"default grid or a smaller tol= (docs/so3.md); in float32, try dtype='float64'. A "
        f"solver needs a ridge above {-low:.2g} (relative to the mean diagonal: "
        f"{-low / np.mean(np.diag(k)):.1e})", IndefiniteKernelWarning, stacklevel=stacklevel)
    return low, high, count


def check_grams(grams, dtype):
    """:func:`check_gram` on each of kernel_fn's {"nngp": K, "ntk": Θ} (only 2-d square ones,
    n ≤ MAX_CHECKED); the warning points at kernel_fn's caller."""
    for name, gram in grams.items():
        check_gram(gram, dtype, f"{name.upper()} Gram matrix", stacklevel=4)
