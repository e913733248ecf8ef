"""The driver of every generated module: input checks, the memory plan, tiles, progress, and
the tiled ``kernel_fn`` around a module's ``_propagate`` (jax and numpy only).

A generated module defines ``_propagate(xa, xb, stats_a, stats_b, want_ntk)`` (the kernels of
the input pairs (xa[p], xb[p]), layer by layer) and its sizes, then calls
:func:`tiled_kernel` once to get ``kernel_fn`` and ``plan_memory``.
"""
import os
import sys
import time
import warnings

import numpy as np
import jax
import jax.numpy as jnp

from kernelc.runtime import RUNTIME_VERSION
from kernelc.runtime.errors import InputError, MemoryBudgetError, QuadratureWarning
from kernelc.runtime.maps import QUADRATURE_ERRORS

__all__ = ["tiled_kernel", "x64_context", "check_inputs", "budget_bytes", "format_bytes",
           "Progress", "run_chunks", "pair_indices", "same_inputs", "QUADRATURE_TOLERANCE",
           "warn_inexact_quadrature"]

MAX_TILE = 4096  # pairs per tile at most: larger tiles stop paying off on CPU


def x64_context(dtype):
    """float64 arithmetic inside the block when ``dtype`` is float64 (a local context: global
    JAX flags are never touched); nothing otherwise."""
    if np.dtype(dtype) != np.float64:
        return _NullContext()
    enable = getattr(jax, "enable_x64", None)
    if enable is None:  # older JAX
        from jax.experimental import enable_x64 as enable
        return enable()
    return enable(True)


class _NullContext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def check_inputs(x, name, shape):
    """``x`` as a numpy array of ``shape`` (box and channels), or InputError saying why not."""
    if x is None:
        raise InputError(f"{name} is missing")
    try:
        x = np.asarray(x)
    except Exception as exc:  # noqa: BLE001 - anything that is not array-like
        raise InputError(f"{name} is not an array: {exc}") from None
    if not np.issubdtype(x.dtype, np.number) or np.iscomplexobj(x):
        raise InputError(f"{name} must hold real numbers, got dtype {x.dtype}")
    if shape[-1] == 1 and tuple(x.shape[1:]) == shape[:-1]:
        x = x[..., None]  # (N, *box) single-channel images get their channel axis
    if x.ndim != len(shape) + 1 or tuple(x.shape[1:]) != shape:
        raise InputError(f"{name} must have shape (N, {', '.join(map(str, shape))}) "
                         f"(N inputs, the box, channels last), got {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise InputError(f"{name} holds no inputs")
    if not np.all(np.isfinite(x)):
        bad = int(np.sum(~np.isfinite(x)))
        raise InputError(f"{name} contains {bad} NaN or infinite values")
    return x


def budget_bytes(max_memory):
    if max_memory is None:
        env = os.environ.get("KERNELC_MAX_MEMORY")
        if env:
            max_memory = env
    if max_memory is None:
        try:
            total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):  # pragma: no cover
            total = 8 << 30
        return int(total * 0.5)
    value = max_memory
    if isinstance(max_memory, str):
        units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
        text = max_memory.strip().lower().rstrip("b").rstrip("i")
        try:
            value = float(text[:-1]) * units[text[-1]] if text and text[-1] in units \
                else float(text)
        except ValueError:
            raise InputError(f"cannot read the memory budget {max_memory!r}; "
                             "write e.g. 2GB or 512MiB") from None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not np.isfinite(value) or value <= 0:
        # inf, 1e400, nan, a list, 0 or a negative number: not a budget
        raise InputError(f"the memory budget must be a positive, finite number of bytes or a "
                         f"size such as 4GB; got {max_memory!r}")
    return int(value)


def format_bytes(n):
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024


class Progress:
    """A text progress bar on stderr, shown once a computation has run for ``after`` seconds."""

    def __init__(self, total, label, enabled=None, after=2.0):
        self.total, self.label, self.after = total, label, after
        self.enabled = sys.stderr.isatty() if enabled is None else bool(enabled)
        self.start = time.perf_counter()
        self.shown = False
        self.after = after if enabled is None else 0.0  # asked for explicitly: show at once

    def update(self, done):
        if not self.enabled:
            return
        elapsed = time.perf_counter() - self.start
        if elapsed < self.after and done < self.total and not self.shown:
            return
        self.shown = True
        frac = done / self.total
        eta = elapsed / max(frac, 1e-9) * (1 - frac)
        bar = "#" * int(30 * frac)
        sys.stderr.write(f"\r{self.label} [{bar:<30}] {done}/{self.total} "
                         f"{elapsed:6.1f}s elapsed, ~{eta:6.1f}s left")
        if done >= self.total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def run_chunks(fn, n_items, chunk, label, progress):
    """Apply ``fn(start, stop)`` over fixed-size chunks (the last one padded), with progress."""
    bar = Progress(-(-n_items // chunk), label, progress)
    outs = []
    for i, start in enumerate(range(0, n_items, chunk)):
        outs.append(fn(start, min(start + chunk, n_items)))
        bar.update(i + 1)
    return outs


def padded(idx, size):
    """Pad an index array to ``size`` (repeating its first entry) so every tile has one shape
    and jit compiles once."""
    return np.concatenate([idx, np.full(size - len(idx), idx[0], idx.dtype)]) \
        if len(idx) < size else idx


def self_pass(fn, x, tile, progress):
    """The self pairs (x[i], x[i]) by tiles of ``tile`` inputs: (K, Θ or None, per-site variances)."""
    n = x.shape[0]
    size = min(tile, n)

    def run(start, stop):
        idx = padded(np.arange(start, stop), size)
        k, t, stats = fn(x[idx])
        keep = stop - start
        return k[:keep], (None if t is None else t[:keep]), [s[:keep] for s in stats]
    parts = run_chunks(run, n, size, "kernelc: diagonal", progress)
    k = jnp.concatenate([p[0] for p in parts])
    t = None if parts[0][1] is None else jnp.concatenate([p[1] for p in parts])
    stats = [jnp.concatenate([p[2][i] for p in parts]) for i in range(len(parts[0][2]))]
    return k, t, stats


def cross_pass(fn, xa, xb, sa, sb, I, J, tile, progress):
    """The pairs (xa[I[p]], xb[J[p]]) by tiles of ``tile`` pairs, as numpy arrays (K, Θ or None)."""
    size = min(tile, len(I))

    def run(start, stop):
        i = padded(I[start:stop], size)
        j = padded(J[start:stop], size)
        k, t = fn(xa[i], xb[j], [s[i] for s in sa], [s[j] for s in sb])
        keep = stop - start
        return np.asarray(k[:keep]), None if t is None else np.asarray(t[:keep])
    parts = run_chunks(run, len(I), size, "kernelc: Gram tiles", progress)
    k = np.concatenate([p[0] for p in parts])
    t = None if parts[0][1] is None else np.concatenate([p[1] for p in parts])
    return k, t


def pair_indices(n1, n2, gram, mirror):
    """(I, J) of the pairs the cross pass computes. A Gram matrix of x1 with itself (``gram``)
    leaves out the diagonal pairs (i, i): they are self pairs, taken from the self pass, where
    the variances a nonlinearity reads are bit-identical to the covariances of the pair (a
    cross pass on (x_i, x_i) reads the self pass's variances against its own, differently
    rounded covariances, and the relu angle at correlation 1 becomes ~1e-8 instead of 0).
    ``mirror`` (identity (S)) keeps only i < j."""
    if mirror:
        return np.triu_indices(n1, 1)
    I, J = (a.ravel() for a in np.meshgrid(np.arange(n1), np.arange(n2), indexing="ij"))
    if gram:
        off = I != J
        I, J = I[off], J[off]
    return I, J


def same_inputs(x1, x2):
    """(I, J) of the pairs whose inputs are bit-identical, x1[i] == x2[j]: self pairs that a
    cross Gram (e.g. the identity block of an orbit) takes from the self pass of x1."""
    a = np.ascontiguousarray(x1).reshape(x1.shape[0], -1)
    b = np.ascontiguousarray(x2).reshape(x2.shape[0], -1)
    where = {}
    for j, row in enumerate(b):
        where.setdefault(row.tobytes(), []).append(j)
    pairs = [(i, j) for i, row in enumerate(a) for j in where.get(row.tobytes(), ())]
    if not pairs:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return tuple(np.array(v, dtype=np.int64) for v in zip(*pairs))


#: relative accuracy below which a Gauss-Hermite map is reported (per dtype): well above the
#: rounding of the map itself, and below what a user of that precision would notice
QUADRATURE_TOLERANCE = {"float32": 1e-5, "float64": 1e-10}


def warn_inexact_quadrature(dtype):
    """One QuadratureWarning per Gauss-Hermite map whose estimated relative error (recorded by
    _quadrature_estimate during this call) is above QUADRATURE_TOLERANCE[dtype]."""
    tol = QUADRATURE_TOLERANCE[str(np.dtype(dtype))]
    for label, (error, scale, n) in sorted(QUADRATURE_ERRORS.items()):
        rel = error / scale if scale > 0 else 0.0
        if rel > tol:
            warnings.warn(
                f"{label} is computed by {n}-point Gauss-Hermite quadrature, which is accurate "
                f"only to ~{rel:.1e} (relative) at the largest pre-activation variance of these "
                f"inputs (tolerance {tol:.0e} for {np.dtype(dtype)}); give the nonlinearity a "
                f"higher degree= (up to 256), or smaller inputs/weights",
                QuadratureWarning, stacklevel=3)


def tiled_kernel(propagate, input_shape, output_is_vector, bytes_per_pair, output_entries,
                 stats_entries, max_tile=MAX_TILE, runtime_version=RUNTIME_VERSION):
    """``(kernel_fn, plan_memory)`` of a network whose kernels of input pairs are computed by
    ``propagate``: ``input_shape`` is (*box, C); ``output_is_vector`` allows identity (S) (a
    Gram matrix of x1 with itself is mirrored); ``bytes_per_pair`` (float32) is held per pair
    at the widest layer; ``output_entries`` and ``stats_entries`` are the entries of the result
    and of the variance maps per pair and per input. ``runtime_version``: the version of
    this package the module was generated for (another one is refused)."""
    if runtime_version != RUNTIME_VERSION:
        raise InputError(f"this module was generated for kernelc runtime version "
                         f"{runtime_version}, but the installed runtime is version "
                         f"{RUNTIME_VERSION}: regenerate it (kernelc compile SPEC)")
    self_batch = jax.jit(lambda x: propagate(x, x, None, None, True))
    self_batch_nngp = jax.jit(lambda x: propagate(x, x, None, None, False))
    cross_batch = jax.jit(lambda xa, xb, sa, sb: propagate(xa, xb, sa, sb, True)[:2])
    cross_batch_nngp = jax.jit(lambda xa, xb, sa, sb: propagate(xa, xb, sa, sb, False)[:2])

    def plan_memory(n1, n2=None, dtype="float32", max_memory=None, symmetric=True):
        """Predicted bytes of the result and of one tile, and the tile size (pairs) under budget."""
        itemsize = np.dtype(dtype).itemsize
        per_pair = bytes_per_pair * itemsize // 4
        budget = budget_bytes(max_memory)
        n_pairs = n1 * (n1 - 1) // 2 if (n2 is None and symmetric) else n1 * (n2 or n1)
        result = (n1 * (n2 or n1)) * output_entries * itemsize * 2
        fixed = result + 2 * (n1 + (n2 or 0)) * stats_entries * itemsize
        if fixed + per_pair > budget:
            raise MemoryBudgetError(
                f"this Gram matrix needs at least {format_bytes(fixed + per_pair)} "
                f"({format_bytes(result)} of results plus {format_bytes(per_pair)} per pair "
                f"of inputs), more than the budget of {format_bytes(budget)}; raise "
                "max_memory or use fewer inputs")
        chunk = int(max(1, min(max(n_pairs, 1), (budget - fixed) // per_pair, max_tile)))
        return {"pairs": n_pairs, "bytes_per_pair": per_pair, "tile_pairs": chunk,
                "tile_bytes": chunk * per_pair, "result_bytes": result, "budget": budget}

    def kernel_fn(x1, x2=None, get=("nngp", "ntk"), *, dtype="float32", max_memory=None,
                  progress=None, symmetric=True):
        """The exact infinite-width NNGP and NTK Gram matrices of this network.

        x1: (N1, *box, C) inputs (channels last; single-channel inputs may omit the channel axis);
        x2: (N2, ...) or None for the Gram matrix of x1 with itself (only pairs i < j are computed
        and mirrored: identity (S), unless ``symmetric=False``; the diagonal pairs (i, i) are self
        pairs and always come from the self pass, with the per-site variances bit-identical to the
        covariances, so their correlation-1 sites are exact; so do all pairs of bit-identical
        inputs, e.g. x1[i] == x2[j] in a cross Gram matrix). ``get``: "nngp", "ntk" or both
        (a dict is returned for a tuple). ``dtype``: "float32" or "float64" (float64 runs inside a
        local x64 context; global JAX flags are not touched). ``max_memory``: bytes or "4GB"; a
        request that cannot fit is refused before anything is allocated. ``progress``: show a
        progress bar (default: when stderr is a terminal and the job runs for over 2 s).
        """
        single = isinstance(get, str)
        get = (get,) if single else tuple(get)
        unknown = [g for g in get if g not in ("nngp", "ntk")]
        if unknown or not get:
            raise InputError(f"get must name 'nngp' and/or 'ntk', got {get!r}")
        if str(np.dtype(dtype)) not in ("float32", "float64"):
            raise InputError(f"dtype must be float32 or float64, got {dtype!r}")
        x1 = check_inputs(x1, "x1", input_shape)
        x2 = None if x2 is None else check_inputs(x2, "x2", input_shape)
        want_ntk = "ntk" in get
        self_fn = self_batch if want_ntk else self_batch_nngp
        cross_fn = cross_batch if want_ntk else cross_batch_nngp
        n1 = x1.shape[0]
        n2 = n1 if x2 is None else x2.shape[0]
        mirror = symmetric and x2 is None and output_is_vector
        plan = plan_memory(n1, None if x2 is None else n2, dtype, max_memory, mirror)
        # self pairs: the diagonal of a Gram matrix and every pair of identical inputs; the value
        # comes from the self pass of x1 (of the smaller index in a Gram matrix: stays symmetric)
        x1c = np.asarray(x1, dtype)
        SI, SJ = same_inputs(x1c, x1c if x2 is None else np.asarray(x2, dtype))
        SK = np.minimum(SI, SJ) if x2 is None else SI
        QUADRATURE_ERRORS.clear()
        with x64_context(dtype):
            xa = jnp.asarray(x1, dtype)
            xb = xa if x2 is None else jnp.asarray(x2, dtype)
            k1, t1, s1 = self_pass(self_fn, xa, plan["tile_pairs"], progress)
            if x2 is None:
                s2 = s1
            else:
                _, _, s2 = self_pass(self_fn, xb, plan["tile_pairs"], progress)
            I, J = pair_indices(n1, n2, x2 is None, mirror)
            shape = (n1, n2) + tuple(k1.shape[1:])
            out = {}
            if len(I):
                k, t = cross_pass(cross_fn, xa, xb, s1, s2, I, J, plan["tile_pairs"], progress)
            for name, vals, diag in (("nngp", k if len(I) else None, k1),
                                     ("ntk", t if len(I) else None, t1)):
                if name not in get:
                    continue
                gram = np.zeros(shape, dtype=np.dtype(dtype))
                if vals is not None:
                    gram[I, J] = vals
                if mirror:
                    gram[J, I] = vals if vals is not None else 0
                if len(SI):  # self pairs: from the self pass, also when symmetric=False
                    gram[SI, SJ] = np.asarray(diag)[SK]
                if not np.all(np.isfinite(gram)):
                    raise InputError(f"the {name} Gram matrix has non-finite entries; the inputs "
                                     "may be too large for float32 (try dtype='float64')")
                out[name] = gram
        warn_inexact_quadrature(dtype)
        return out[get[0]] if single else out

    return kernel_fn, plan_memory
