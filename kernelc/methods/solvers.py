"""Kernel regression for large N: a preconditioned conjugate-gradient solve of (K + r·I) α = Y
that reads K by blocks of rows, so K may be a memory-mapped Gram matrix on disk
(``kernel_fn(..., out=FOLDER)``) larger than memory.

* **Preconditioner**: a rank-m partial pivoted Cholesky factor L (n × m) of K (Harbrecht,
  Peters & Schneider 2012; the GPyTorch preconditioner of Gardner et al. 2018): m greedy
  pivots, each the largest remaining diagonal entry of K − L Lᵀ, reading one row of K per
  pivot (= its column, K is symmetric; a row is contiguous on disk). P = L Lᵀ + r·I is applied by the Woodbury identity,
  P⁻¹ v = (v − L (r·I_m + Lᵀ L)⁻¹ Lᵀ v) / r, at O(n m) per application.
* **Iteration**: conjugate gradients on all right-hand sides at once (each column has its own
  step lengths; one pass over K per iteration for all of them), stopped when every column's
  residual ‖(K + r·I) α − y‖ ≤ tol · ‖y‖, or refused (``SolverError``) after ``max_iter``
  iterations with the reached residual in the message: never a silently inaccurate answer.

Kernel Gram matrices of wide networks have fast-decaying spectra, so a few hundred pivots
capture the large eigenvalues and CG converges in tens of iterations where the condition number
of K + r·I alone would need thousands.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import scipy.linalg

from ..errors import InputError, KernelcError

__all__ = ["SolverError", "CGResult", "pivoted_cholesky", "conjugate_gradient",
           "solve_regularised", "DENSE_LIMIT"]

#: above this many training points kernel regression uses conjugate gradients by default
#: (a dense solve needs n² float64 in memory and O(n³) time: 20,000 -> 3.2 GB, minutes)
DENSE_LIMIT = 20_000


class SolverError(KernelcError):
    """The iterative solve did not reach its tolerance (the message says how far it got)."""

    kind = "solver error"


@dataclass(frozen=True)
class CGResult:
    """α (n, k), the iterations used, the final relative residual of each column, the rank of
    the preconditioner and the passes over K (each one reads all of K once)."""

    alpha: np.ndarray
    iterations: int
    residuals: np.ndarray
    rank: int
    passes: int


def _row_blocks(n: int, rows: int):
    return ((i, min(i + rows, n)) for i in range(0, n, rows))


def matvec(k, v: np.ndarray, shift: float, rows: int = 2048) -> np.ndarray:
    """(K + shift·I) v for an (n, n) array-like K (numpy or memory-mapped), block rows at a
    time in float64."""
    out = np.empty_like(v)
    for a, b in _row_blocks(len(v), rows):
        out[a:b] = np.asarray(k[a:b], dtype=np.float64) @ v
    return out + shift * v


def pivoted_cholesky(k, rank: int, rel_tol: float = 1e-10) -> np.ndarray:
    """L (n × m, m ≤ rank) with K ≈ L Lᵀ: greedy pivots on the largest remaining diagonal entry
    of K − L Lᵀ (stops early when it falls below rel_tol · max diag K); one row of K read
    per pivot."""
    n = k.shape[0]
    diag = np.asarray(np.diagonal(k), dtype=np.float64).copy()
    top = float(diag.max()) if n else 0.0
    columns = []
    for _ in range(min(rank, n)):
        p = int(np.argmax(diag))
        if diag[p] <= rel_tol * top:
            break
        column = np.asarray(k[p], dtype=np.float64).copy()  # K symmetric: a row (contiguous)
        for c in columns:
            column -= c * c[p]
        column /= np.sqrt(diag[p])
        diag -= column ** 2
        diag[p] = 0.0
        columns.append(column)
    return np.stack(columns, axis=1) if columns else np.zeros((n, 0))


def _woodbury(low_rank: np.ndarray, shift: float):
    """v -> (L Lᵀ + shift·I)⁻¹ v by the Woodbury identity (a Cholesky of the m × m core)."""
    m = low_rank.shape[1]
    if m == 0:
        return lambda v: v / shift
    core = scipy.linalg.cho_factor(shift * np.eye(m) + low_rank.T @ low_rank)
    return lambda v: (v - low_rank @ scipy.linalg.cho_solve(core, low_rank.T @ v)) / shift


def conjugate_gradient(apply, y: np.ndarray, precondition, tol: float, max_iter: int):
    """Preconditioned CG on every column of y at once: (α, iterations, relative residuals)."""
    alpha = np.zeros_like(y)
    r = y.copy()
    norms = np.linalg.norm(y, axis=0)
    norms[norms == 0] = 1.0
    z = precondition(r)
    p = z.copy()
    rz = np.sum(r * z, axis=0)
    relative = np.linalg.norm(r, axis=0) / norms
    it = 0
    while it < max_iter and np.any(relative > tol):
        it += 1
        q = apply(p)
        step = rz / np.maximum(np.sum(p * q, axis=0), np.finfo(float).tiny)
        active = relative > tol  # converged columns stay where they are
        step = np.where(active, step, 0.0)
        alpha += step * p
        r -= step * q
        z = precondition(r)
        rz_new = np.sum(r * z, axis=0)
        p = z + np.where(active, rz_new / np.maximum(rz, np.finfo(float).tiny), 0.0) * p
        rz = rz_new
        relative = np.linalg.norm(r, axis=0) / norms
    return alpha, it, relative


def solve_regularised(k, y, shift: float, *, tol: float = 1e-6, rank: int = 200,
                      max_iter: Optional[int] = None, rows: int = 2048) -> CGResult:
    """α = (K + shift·I)⁻¹ y by pivoted-Cholesky-preconditioned conjugate gradients; K is an
    (n, n) symmetric positive semi-definite array-like (a memory-mapped file is read by
    blocks of ``rows`` rows), y (n,) or (n, k), shift > 0. The residual of every column is
    checked against ``tol`` relative to its norm: above it after ``max_iter`` iterations
    (default 10·√n + 100) the solve is refused with a SolverError."""
    if k.ndim != 2 or k.shape[0] != k.shape[1]:
        raise InputError(f"the training kernel must be square, got shape {k.shape}")
    y = np.asarray(y, dtype=np.float64)
    vector = y.ndim == 1
    y = y[:, None] if vector else y
    n = k.shape[0]
    if y.shape[0] != n:
        raise InputError(f"the targets have {y.shape[0]} rows but the kernel has {n}")
    if not (np.isfinite(shift) and shift > 0):
        raise InputError(f"conjugate gradients need a positive ridge (diag_reg > 0), got {shift}")
    if not (0 < tol < 1):
        raise InputError(f"tol must be in (0, 1), got {tol!r}")
    max_iter = int(10 * np.sqrt(n) + 100) if max_iter is None else int(max_iter)
    low_rank = pivoted_cholesky(k, rank)
    passes = {"n": 0}

    def apply(v):
        passes["n"] += 1
        return matvec(k, v, shift, rows)
    alpha, iterations, residuals = conjugate_gradient(apply, y, _woodbury(low_rank, shift), tol,
                                                      max_iter)
    # the recursion's residual drifts from the true one: check the answer itself once
    true = np.linalg.norm(apply(alpha) - y, axis=0) / np.maximum(np.linalg.norm(y, axis=0),
                                                                  np.finfo(float).tiny)
    if np.any(true > tol):
        raise SolverError(
            f"conjugate gradients reached a relative residual of {float(true.max()):.2e} after "
            f"{iterations} iterations (tolerance {tol:.0e}); raise the preconditioner rank "
            f"(now {low_rank.shape[1]}), the ridge or max_iter, or use the dense solver")
    return CGResult(alpha[:, 0] if vector else alpha, iterations, true, low_rank.shape[1],
                    passes["n"])
