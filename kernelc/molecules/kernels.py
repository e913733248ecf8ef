"""Molecule kernels of an energy that is a sum of one shared per-atom network.

If E(M) = Σ_{i∈M} f(atom_i) with f a network whose infinite-width kernel is k (NNGP or NTK),
then E is a Gaussian process (resp. trains like one) with the kernel

    K(M, M') = Σ_{i∈M} Σ_{j∈M'} k(atom_i, atom_j),

i.e. K = A₁ᵀ k A₂ with A the (atoms × molecules) membership indicator. Sums are order
independent, so K is invariant to reordering the atoms of either molecule by construction (no
atom "slots"); if k is invariant to rotating either argument, K is invariant to rigid motions.
"""
from __future__ import annotations

import numpy as np

from ..errors import InputError


def _check_offsets(offsets, n_atoms, name):
    offsets = np.asarray(offsets)
    if offsets.ndim != 1 or offsets.size < 2 or not np.issubdtype(offsets.dtype, np.integer):
        raise InputError(f"{name} must be a 1-d integer array [0, ..., n_atoms] of length "
                         f"n_molecules + 1, got shape {offsets.shape} dtype {offsets.dtype}")
    if offsets[0] != 0 or offsets[-1] != n_atoms:
        raise InputError(f"{name} must start at 0 and end at the number of atoms {n_atoms}, got "
                         f"{offsets[0]} ... {offsets[-1]}")
    if np.any(np.diff(offsets) <= 0):
        # np.add.reduceat returns a single element (not 0) for an empty segment
        raise InputError(f"{name} must be strictly increasing: every molecule needs ≥ 1 atom")
    return offsets


def molecule_gram(atom_gram, offsets1, offsets2=None):
    """K[a, b] = Σ_{i ∈ molecule a} Σ_{j ∈ molecule b} k[i, j] of an atom Gram matrix.

    atom_gram (N1, N2, ...) (trailing axes, if any, are kept); offsets1 (n1 + 1,) and offsets2
    (n2 + 1,) delimit the molecules' atoms (AtomData.offsets); offsets2=None means the same
    atoms on both sides (a square Gram matrix). Returns (n1, n2, ...)."""
    k = np.asarray(atom_gram)
    if k.ndim < 2:
        raise InputError(f"atom_gram must be at least 2-d (N1, N2, ...), got shape {k.shape}")
    if k.dtype.kind not in "iufc":
        # np.add.reduceat of bools is a logical or (1, not the count); strings/objects died in it
        raise InputError(f"atom_gram must be numbers, got dtype {k.dtype}")
    if k.dtype.kind in "iu":  # summed in its own width, an int8 block of 100s wrapped around
        k = k.astype(np.int64 if k.dtype.kind == "i" else np.uint64)
    offsets1 = _check_offsets(offsets1, k.shape[0], "offsets1")
    offsets2 = offsets1 if offsets2 is None else offsets2
    offsets2 = _check_offsets(offsets2, k.shape[1], "offsets2")
    # block sums: one segmented sum over rows, then one over columns
    rows = np.add.reduceat(k, offsets1[:-1], axis=0)
    return np.add.reduceat(rows, offsets2[:-1], axis=1)


def _signals_offsets(data, name):
    try:
        return np.asarray(data.signals), np.asarray(data.offsets)
    except AttributeError:
        raise InputError(f"{name} must be an AtomData (fields signals and offsets), got "
                         f"{type(data).__name__}") from None


def molecule_kernel_fn(atom_kernel_fn, data1, data2=None, get="ntk", **kwargs):
    """Molecule Gram matrices from a per-atom kernel function.

    Calls ``atom_kernel_fn(data1.signals, data2.signals or None, get=get, **kwargs)`` (the
    signature of compiled kernelc kernels), then sums atom blocks with :func:`molecule_gram`.
    Returns an (n1, n2) array when ``get`` is a string, else a dict {name: (n1, n2) array}."""
    if not callable(atom_kernel_fn):
        raise InputError(f"atom_kernel_fn must be a function (x1, x2, get=..., **kwargs) -> Gram "
                         f"matrix, such as a compiled kernel's kernel_fn, got "
                         f"{type(atom_kernel_fn).__name__}")
    x1, off1 = _signals_offsets(data1, "data1")
    if data2 is None:
        x2, off2 = None, None
    else:
        x2, off2 = _signals_offsets(data2, "data2")
    out = atom_kernel_fn(x1, x2, get=get, **kwargs)
    if isinstance(out, dict):
        return {name: molecule_gram(g, off1, off2) for name, g in out.items()}
    return molecule_gram(out, off1, off2)
