"""Empirical NNGP and NTK of finite networks, by JAX autodiff, and their Monte Carlo means.

* :func:`empirical_ntk` -- Θ̂(x, x') = (1/n_out) Σ_k ⟨∂f_k(x)/∂θ, ∂f_k(x')/∂θ⟩ of one network
  (the per-output-unit NTK averaged over units; the infinite-width NTK is δ_kk' Θ). Two ways:
  ``"jacobian"`` contracts Jacobians (jacrev), in blocks of ``batch_size`` inputs so that memory
  stays at batch_size·n_out·|θ| numbers; ``"ntvp"`` never holds a Jacobian: column (j, k) is
  J(x) (J(x'_j)ᵀ e_k), one vjp and one jvp, memory O(|θ|). ``"auto"`` picks by ``max_memory``.
* :func:`empirical_nngp` -- K̂(x, x') = mean over networks of (1/n_out) f(x)·f(x')ᵀ, the output
  covariance over random initialisations.
* :func:`monte_carlo` -- per-sample NNGP/NTK estimates for ``samples`` random networks of one
  width (jit-compiled once per width; small networks are vmapped over several samples at once),
  the raw material of :mod:`kernelc.verify`.

Outputs of any layout count as units: everything after the batch axis is flattened.
"""
from __future__ import annotations

import sys
import time
from functools import lru_cache
from typing import Callable, Dict, Optional, Sequence

import numpy as np

from ..errors import InputError
from ..runtime.driver import x64_context

DEFAULT_MAX_MEMORY = 1 << 30  # bytes of Jacobian blocks "auto" allows before it streams


def _flat(apply_fn, params, x):
    out = apply_fn(params, x)
    return out.reshape(out.shape[0], -1)


def _n_params(params) -> int:
    import jax
    return int(sum(np.prod(leaf.shape) for leaf in jax.tree_util.tree_leaves(params)))


def _itemsize(params) -> int:
    import jax
    leaves = jax.tree_util.tree_leaves(params)
    return int(np.dtype(leaves[0].dtype).itemsize) if leaves else 4


def _jacobian(apply_fn, params, x):
    """Leaves (N, n_out, P_leaf): the Jacobian of the flattened outputs, one input at a time
    (vmapped), so each backward pass runs over one input, not the whole batch."""
    import jax

    def single(xi):
        return jax.jacrev(lambda p: _flat(apply_fn, p, xi[None])[0])(params)
    jac = jax.vmap(single)(x)
    n = x.shape[0]
    return [leaf.reshape(n, leaf.shape[1], -1) for leaf in jax.tree_util.tree_leaves(jac)]


def _contract(ja, jb, reduce):
    import jax.numpy as jnp
    out = None
    for a, b in zip(ja, jb):
        term = jnp.einsum("ikp,jkp->ijk", a, b)
        out = term if out is None else out + term
    return jnp.mean(out, axis=-1) if reduce == "mean" else out


@lru_cache(maxsize=32)
def _jacobian_block(apply_fn, reduce, same):
    """jit(block): the NTK block of two input batches by Jacobian contraction (``same``: one
    batch with itself, one Jacobian). Jitted per apply_fn: op-by-op autodiff is very slow."""
    import jax

    def block(params, xa, xb):
        ja = _jacobian(apply_fn, params, xa)
        jb = ja if same else _jacobian(apply_fn, params, xb)
        return _contract(ja, jb, reduce)
    return jax.jit(block)


def _ntk_jacobian(apply_fn, params, x1, x2, reduce, batch_size):
    import jax.numpy as jnp
    same = x2 is None
    x2 = x1 if same else x2
    n1, n2 = x1.shape[0], x2.shape[0]
    b = max(1, int(batch_size or max(n1, n2)))
    if b >= n1 and b >= n2:
        return _jacobian_block(apply_fn, reduce, same)(params, x1, None if same else x2)
    rows = []
    for i in range(0, n1, b):
        cols = []
        for j in range(0, n2, b):
            if same and i == j:
                cols.append(_jacobian_block(apply_fn, reduce, True)(params, x1[i:i + b], None))
            else:
                cols.append(_jacobian_block(apply_fn, reduce, False)(params, x1[i:i + b],
                                                                     x2[j:j + b]))
        rows.append(jnp.concatenate(cols, axis=1))
    return jnp.concatenate(rows, axis=0)


@lru_cache(maxsize=32)
def _ntvp_column(apply_fn):
    """jit(column): Θ̂ column (j, unit) = J(x1) · (∂f_unit(x2_j)/∂θ), one vjp and one jvp."""
    import jax
    import jax.numpy as jnp

    def column(params, x1, x2, j, unit):
        f2, vjp2 = jax.vjp(lambda p: _flat(apply_fn, p, x2), params)
        cot = jnp.zeros(f2.shape, f2.dtype).at[j, unit].set(1)
        (tangent,) = vjp2(cot)
        _, jv = jax.jvp(lambda p: _flat(apply_fn, p, x1), (params,), (tangent,))
        return jv[:, unit]
    return jax.jit(column)


def _ntk_ntvp(apply_fn, params, x1, x2, reduce):
    """Θ̂ without a Jacobian: a Python loop over the N2·n_out columns (unrolled under an outer
    jit; each column one jitted vjp + jvp otherwise). A loop, not lax.map: XLA:CPU runs
    convolutions inside while-loops an order of magnitude slower."""
    import jax
    import jax.numpy as jnp
    x2 = x1 if x2 is None else x2
    k = int(np.prod(jax.eval_shape(apply_fn, params, x2[:1]).shape[1:]))
    col = _ntvp_column(apply_fn)
    cols = [[col(params, x1, x2, j, unit) for unit in range(k)] for j in range(x2.shape[0])]
    out = jnp.stack([jnp.stack(c, axis=-1) for c in cols], axis=1)   # (N1, N2, n_out)
    return jnp.mean(out, axis=-1) if reduce == "mean" else out


def empirical_ntk(apply_fn: Callable, params, x1, x2=None, *, method: str = "auto",
                  batch_size: Optional[int] = None, reduce: str = "mean",
                  max_memory: int = DEFAULT_MAX_MEMORY):
    """The empirical NTK of one network: (N1, N2) (``reduce="mean"``: averaged over output
    units) or (N1, N2, n_out) per unit (``reduce="none"``).

    ``method``: "jacobian" (Jacobian contraction, in blocks of ``batch_size`` inputs),
    "ntvp" (NTK-vector products, memory O(|θ|)) or "auto" (jacobian when a block of Jacobians
    fits in ``max_memory`` bytes, with the largest such block, else ntvp). jit-friendly for the
    concrete methods.
    """
    import jax.numpy as jnp
    if method not in ("auto", "jacobian", "ntvp"):
        raise InputError(f"method must be 'auto', 'jacobian' or 'ntvp', got {method!r}")
    if reduce not in ("mean", "none"):
        raise InputError(f"reduce must be 'mean' or 'none', got {reduce!r}")
    x1 = jnp.asarray(x1)
    x2 = None if x2 is None else jnp.asarray(x2)
    if method == "auto":
        import jax
        n_out = int(np.prod(jax.eval_shape(apply_fn, params, x1[:1]).shape[1:]))
        per_input = n_out * _n_params(params) * _itemsize(params)
        n_all = x1.shape[0] + (0 if x2 is None else x2.shape[0])
        if per_input * n_all <= max_memory:
            method, batch_size = "jacobian", None
        elif 2 * per_input <= max_memory:
            method, batch_size = "jacobian", max(1, int(max_memory // (2 * per_input)))
        else:
            method = "ntvp"
    if method == "ntvp":
        return _ntk_ntvp(apply_fn, params, x1, x2, reduce)
    return _ntk_jacobian(apply_fn, params, x1, x2, reduce, batch_size)


def output_product(apply_fn: Callable, params, x1, x2=None, reduce: str = "mean"):
    """One network's (1/n_out) f(x1)·f(x2)ᵀ: (N1, N2) (or (N1, N2, n_out) per unit)."""
    import jax.numpy as jnp
    f1 = _flat(apply_fn, params, jnp.asarray(x1))
    f2 = f1 if x2 is None else _flat(apply_fn, params, jnp.asarray(x2))
    if reduce == "none":
        return f1[:, None, :] * f2[None, :, :]
    return f1 @ f2.T / f1.shape[1]


def empirical_nngp(apply_fn: Callable, params, x1, x2=None):
    """Monte Carlo NNGP: the mean over networks (``params`` is a list of parameter pytrees, or
    one pytree whose leaves carry a leading sample axis) of (1/n_out) f(x1)·f(x2)ᵀ."""
    import jax
    import jax.numpy as jnp
    if isinstance(params, (list, tuple)):
        prods = [output_product(apply_fn, p, x1, x2) for p in params]
        if not prods:
            raise InputError("empirical_nngp needs at least one set of parameters")
        return jnp.mean(jnp.stack(prods), axis=0)
    return jnp.mean(jax.vmap(lambda p: output_product(apply_fn, p, x1, x2))(params), axis=0)


def monte_carlo(init_fn: Callable, apply_fn: Callable, x1, x2=None, *, width: int,
                samples: int = 64, seed: int = 0, get: Sequence[str] = ("nngp", "ntk"),
                dtype: str = "float32", method: str = "auto", chunk: Optional[int] = None,
                max_memory: int = DEFAULT_MAX_MEMORY, key_impl: str = "threefry2x32",
                readout_fn: Optional[Callable] = None,
                progress: Optional[Callable[[int, int], None]] = None) -> Dict[str, np.ndarray]:
    """Per-sample empirical kernels of ``samples`` random networks of hidden width ``width``.

    Returns {"nngp": (S, N1, N2), "ntk": (S, N1, N2)} as float64 numpy arrays: sample s is the
    network drawn with ``fold_in(jax.random.key(seed, impl=key_impl), s)`` (so sample s is the
    same network whatever ``samples`` or ``chunk`` is; "rbg" keys compile faster, but their
    draws differ under vmap, so with them a sample depends on ``chunk``). The per-sample NNGP
    is (1/n_out) f(x1)·f(x2)ᵀ, the NTK the unit-averaged empirical NTK. ``chunk`` samples are vmapped per jit call (default: as many as
    keep a call's Jacobians near 64 MB). ``dtype``: "float32" or "float64" (the latter inside a
    local x64 context). ``progress(done, total)`` is called after each chunk. With
    ``readout_fn(params, x1, x2)`` (e.g. :meth:`FiniteNetwork.readout_nngp`) ``get`` may also
    name "nngp_readout": the NNGP averaged analytically over the readout weights.
    """
    import jax
    import jax.numpy as jnp
    given = get
    try:  # one name is one kernel (tuple("nngp") were its letters)
        get = (get,) if isinstance(get, str) else tuple(get)
    except TypeError:
        get = ()
    if not set(get) <= {"nngp", "ntk", "nngp_readout"} or not get:
        get = given
        raise InputError(f"get must name 'nngp', 'ntk' and/or 'nngp_readout', got {get!r}")
    if "nngp_readout" in get and readout_fn is None:
        raise InputError("get='nngp_readout' needs a readout_fn")
    if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or samples < 1:
        raise InputError(f"samples must be a positive integer, got {samples!r}")
    with x64_context(dtype):
        xa = jnp.asarray(np.asarray(x1), dtype)
        xb = None if x2 is None else jnp.asarray(np.asarray(x2), dtype)
        base = jax.random.key(seed, impl=key_impl)
        shape = tuple(xa.shape[1:])
        probe = jax.eval_shape(lambda k: init_fn(k, shape, width, dtype), base)  # no compile
        n_par = _n_params(probe)
        n_out = int(np.prod(jax.eval_shape(apply_fn, probe, xa[:1]).shape[1:]))
        n_in = xa.shape[0] + (0 if xb is None else xb.shape[0])
        per_sample = max(1, n_par * n_in * n_out * np.dtype(dtype).itemsize)
        if chunk is None:
            chunk = int(max(1, min(samples, 32, (64 << 20) // per_sample)))
        ntk_method = method
        if method == "auto":
            ntk_method = "jacobian" if per_sample <= max_memory else "ntvp"
        batch = None
        if ntk_method == "jacobian" and per_sample > max_memory:
            batch = max(1, int(max_memory // (2 * n_par * n_out * np.dtype(dtype).itemsize)))

        def one(key):
            params = init_fn(key, shape, width, dtype)
            out = {}
            if "nngp" in get:
                out["nngp"] = output_product(apply_fn, params, xa, xb)
            if "nngp_readout" in get:
                out["nngp_readout"] = readout_fn(params, xa, xb)
            if "ntk" in get:
                out["ntk"] = empirical_ntk(apply_fn, params, xa, xb, method=ntk_method,
                                           batch_size=batch)
            return out

        run = jax.jit(jax.vmap(one)) if chunk > 1 else jax.jit(one)
        parts = {k: [] for k in get}
        done = 0
        while done < samples:
            size = min(chunk, samples - done)
            idx = np.arange(done, done + chunk)  # fixed chunk size: one compilation
            if chunk > 1:
                keys = jax.vmap(lambda i: jax.random.fold_in(base, i))(jnp.asarray(idx))
                res = run(keys)
                for k in get:
                    parts[k].append(np.asarray(res[k], dtype=np.float64)[:size])
            else:
                res = run(jax.random.fold_in(base, done))
                for k in get:
                    parts[k].append(np.asarray(res[k], dtype=np.float64)[None])
            done += size
            if progress is not None:
                progress(done, samples)
    return {k: np.concatenate(v, axis=0) for k, v in parts.items()}


def stderr_progress(label: str) -> Callable[[int, int], None]:
    """A ``progress(done, total)`` callback writing one updating line to stderr."""
    start = time.perf_counter()
    tty = sys.stderr.isatty()

    def update(done, total):
        elapsed = time.perf_counter() - start
        end = "\n" if done >= total else ""
        if tty or done >= total:
            sys.stderr.write(f"\r{label}: {done}/{total} samples, {elapsed:6.1f}s{end}")
            sys.stderr.flush()
    return update
