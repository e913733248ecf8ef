"""Runtime helpers copied verbatim into every generated module (below the marker line).

This file is a real module so that it can be linted and unit-tested; the code generator emits
the text after ``# --- prelude ---`` so generated modules depend on jax and numpy only.
"""
# --- prelude ---
import os
import sys
import time
import warnings

import numpy as np
import jax
import jax.numpy as jnp
import jax.scipy.special as jsp  # noqa: F401 - emitted nonlinearity maps may call jsp.erf

try:  # kernelc's own error types when it is installed; plain ones otherwise
    from kernelc.errors import InputError, MemoryBudgetError, QuadratureWarning
except ImportError:  # pragma: no cover - the module is self-contained
    class InputError(ValueError):
        pass

    class MemoryBudgetError(MemoryError):
        pass

    class QuadratureWarning(UserWarning):
        pass

_LETTERS = "abcdefghijklmnopqrstuvw"


def _stencil(k, terms, nslots, pads, out_box, mode):
    """mean_j k[..., t + a_j, t' + b_j]: a shift-and-add over the trailing spatial slots.

    ``terms`` lists one offset per slot for each j; ``pads`` gives (lo, hi) per axis; ``mode``
    is 'same' (zero padding), 'circular' (wrap around) or 'valid' (no padding).
    """
    d = len(pads)
    lead = k.ndim - nslots * d
    if mode != "valid" and any(lo or hi for lo, hi in pads):
        widths = [(0, 0)] * lead + list(pads) * nslots
        k = jnp.pad(k, widths, mode="constant" if mode == "same" else "wrap")
    acc = None
    for term in terms:
        index = [slice(None)] * lead
        for offset in term:
            for axis in range(d):
                start = pads[axis][0] + offset[axis]
                index.append(slice(start, start + out_box[axis]))
        part = k[tuple(index)]
        acc = part if acc is None else acc + part
    return acc / len(terms)


def _reduced_stencil(k, terms, pads, out_box, mode):
    """K̃⁺[t,t'](q) = mean_y k[t+y, t'+ρ(q)y] for each q: ``terms[q]`` pairs (y, ρ(q)y).

    ``k`` is either a box kernel (p, *box, *box) (the lift) or a reduced group kernel
    (p, H, *box, *box) whose slice q is used for output q (the group convolution).
    """
    grouped = k.ndim == 2 + 2 * len(pads)
    return jnp.stack([_stencil(k[:, q] if grouped else k, terms[q], 2, pads, out_box, mode)
                      for q in range(len(terms))], axis=1)


_SLICE_LIMIT = 1024  # shifted slices per general stencil before switching to gathers


def _general_stencil(k, terms, pads, out_box, mode):
    """K⁺[(t,r),(t',r')] = mean_y k[(t+ρ(r)y, r), (t'+ρ(r')y, r')]: ``terms[r][r']`` pairs
    (ρ(r)y, ρ(r')y). ``k`` is a box kernel (the lift) or a general group kernel.

    Small cases run as |H|²·|S| shifted slices (fast on CPU); large ones (O: 24²·27) as one
    gather per offset y, which keeps the compile time bounded (minutes -> seconds for O).
    """
    d = len(pads)
    grouped = k.ndim == 3 + 2 * d
    order = len(terms)
    if order * order * len(terms[0][0]) <= _SLICE_LIMIT:
        blocks = [[_stencil(k[(slice(None), r) + (slice(None),) * d + (rp,)] if grouped else k,
                            terms[r][rp], 2, pads, out_box, mode) for rp in range(order)]
                  for r in range(order)]
        return _stack_general(blocks, d)
    if mode != "valid" and any(lo or hi for lo, hi in pads):
        widths = [(0, 0)] + ([(0, 0)] if grouped else []) + list(pads) \
            + ([(0, 0)] if grouped else []) + list(pads)
        k = jnp.pad(k, widths, mode="constant" if mode == "same" else "wrap")
    pbox = k.shape[2:2 + d] if grouped else k.shape[1:1 + d]
    n_in = int(np.prod(pbox))
    k = k.reshape((k.shape[0], order, n_in, order, n_in) if grouped else (k.shape[0], n_in, n_in))
    out_sites = np.stack(np.meshgrid(*[np.arange(n) for n in out_box], indexing="ij"), -1)
    out_sites = out_sites.reshape(-1, d) + np.array([lo for lo, _ in pads])
    strides = np.array([int(np.prod(pbox[i + 1:])) for i in range(d)])
    rows = np.arange(order)[:, None, None, None]
    cols = np.arange(order)[None, None, :, None]
    acc = None
    for j in range(len(terms[0][0])):
        first = np.array([terms[r][0][j][0] for r in range(order)])  # ρ(r) y_j
        second = np.array([terms[0][rp][j][1] for rp in range(order)])  # ρ(r') y_j
        i1 = ((out_sites[None] + first[:, None]) @ strides)[:, :, None, None]
        i2 = ((out_sites[None] + second[:, None]) @ strides)[None, None]
        part = k[:, rows, i1, cols, i2] if grouped else k[:, i1, i2]
        acc = part if acc is None else acc + part
    shape = (k.shape[0], order) + tuple(out_box) + (order,) + tuple(out_box)
    return (acc / len(terms[0][0])).reshape(shape)


def _right_mix(k, perms, d):
    """mean_{s∈R} K[(t, rs), (t', r's)]: both group axes permuted by right multiplication."""
    acc = None
    for perm in perms:
        idx = np.asarray(perm)
        part = jnp.take(jnp.take(k, idx, axis=1), idx, axis=2 + d)
        acc = part if acc is None else acc + part
    return acc / len(perms)


def _input_full(xa, xb, d):
    """K0[t, t'] = (1/C) Σ_c f_c(t) f'_c(t') for each pair (xa[p], xb[p])."""
    s1, s2 = _LETTERS[:d], _LETTERS[d:2 * d]
    return jnp.einsum(f"p{s1}z,p{s2}z->p{s1}{s2}", xa, xb) / xa.shape[-1]


def _input_diag(xa, xb):
    """K0[t, t] = (1/C) Σ_c f_c(t) f'_c(t)."""
    return jnp.mean(xa * xb, axis=-1)


def _diag_full(k, d):
    """(p, *box, *box) -> (p, *box): the entries K[t, t]."""
    box = k.shape[1:1 + d]
    n = int(np.prod(box))
    return jnp.diagonal(k.reshape(k.shape[0], n, n), axis1=1, axis2=2).reshape(k.shape[:1] + box)


def _diag_general(k, d):
    """(p, H, *box, H, *box) -> (p, H, *box): the entries K[(t,r), (t,r)]."""
    head = k.shape[1:2 + d]
    n = int(np.prod(head))
    return jnp.diagonal(k.reshape(k.shape[0], n, n), axis1=1, axis2=2).reshape(k.shape[:1] + head)


def _variances(kind, d, va, vb):
    """Broadcast per-site variances of the two inputs against a kernel of layout ``kind``."""
    if kind in ("box_diag", "group_diag", "vector"):
        return va, vb
    if kind == "so3_reduced":  # one variance K̃(e) per input, for every grid entry
        return va[:, None], vb[:, None]
    if kind == "so3_general":  # K[g_i, g_i] per grid point: (p, N) against (p, N, N)
        return va[:, :, None], vb[:, None, :]
    if kind == "box_full":
        return va.reshape(va.shape + (1,) * d), vb.reshape(vb.shape[:1] + (1,) * d + vb.shape[1:])
    if kind == "group_reduced":
        return (va.reshape(va.shape[:1] + (1,) + va.shape[1:] + (1,) * d),
                vb.reshape(vb.shape[:1] + (1,) * (d + 1) + vb.shape[1:]))
    # group_general: va, vb are (p, H, *box)
    return (va.reshape(va.shape + (1,) * (d + 1)),
            vb.reshape(vb.shape[:1] + (1,) * (d + 1) + vb.shape[1:]))


def _self_diagonal(kind, d, k):
    """The variances K[g, g](f, f) of a self-pair kernel of layout ``kind``."""
    if kind in ("box_diag", "group_diag", "vector"):
        return k
    if kind == "box_full":
        return _diag_full(k, d)
    if kind == "group_reduced":
        return _diag_full(k[:, 0], d)  # K[(t,r),(t,r)] = K̃[t,t](e), the same for every r
    if kind == "so3_reduced":
        return k[:, -1]  # K̃(e), stored after the grid values (e is not a grid point)
    if kind == "so3_general":
        return jnp.diagonal(k, axis1=1, axis2=2)
    return _diag_general(k, d)


def _stack_general(blocks, d):
    """blocks[r][r'] of shape (p, *box, *box) -> (p, H, *box, H, *box)."""
    return jnp.stack([jnp.stack(row, axis=1 + d) for row in blocks], axis=1)


def _pick(stats, index):
    return None if stats is None else stats[index]


def _gather(stats, idx):
    return [s[idx] for s in stats]


def _x64_context(dtype):
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


def _check_inputs(x, name):
    if x is None:
        raise InputError(f"{name} is missing")
    try:
        x = np.asarray(x)
    except Exception as exc:  # noqa: BLE001 - anything that is not array-like
        raise InputError(f"{name} is not an array: {exc}") from None
    if not np.issubdtype(x.dtype, np.number) or np.iscomplexobj(x):
        raise InputError(f"{name} must hold real numbers, got dtype {x.dtype}")
    shape = INPUT_SHAPE
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


def _budget_bytes(max_memory):
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


def _fmt_bytes(n):
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024


class _Progress:
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


def _run_chunks(fn, n_items, chunk, label, progress):
    """Apply ``fn(start, stop)`` over fixed-size chunks (the last one padded), with progress."""
    bar = _Progress(-(-n_items // chunk), label, progress)
    outs = []
    for i, start in enumerate(range(0, n_items, chunk)):
        outs.append(fn(start, min(start + chunk, n_items)))
        bar.update(i + 1)
    return outs


def plan_memory(n1, n2=None, dtype="float32", max_memory=None, symmetric=True):
    """Predicted bytes of the result and of one tile, and the tile size (pairs) under budget."""
    itemsize = np.dtype(dtype).itemsize
    per_pair = BYTES_PER_PAIR * itemsize // 4
    budget = _budget_bytes(max_memory)
    n_pairs = n1 * (n1 - 1) // 2 if (n2 is None and symmetric) else n1 * (n2 or n1)
    result = (n1 * (n2 or n1)) * OUTPUT_ENTRIES * itemsize * 2
    fixed = result + 2 * (n1 + (n2 or 0)) * STATS_ENTRIES * itemsize
    if fixed + per_pair > budget:
        raise MemoryBudgetError(
            f"this Gram matrix needs at least {_fmt_bytes(fixed + per_pair)} "
            f"({_fmt_bytes(result)} of results plus {_fmt_bytes(per_pair)} per pair of inputs), "
            f"more than the budget of {_fmt_bytes(budget)}; raise max_memory or use fewer inputs")
    chunk = int(max(1, min(max(n_pairs, 1), (budget - fixed) // per_pair, MAX_TILE)))
    return {"pairs": n_pairs, "bytes_per_pair": per_pair, "tile_pairs": chunk,
            "tile_bytes": chunk * per_pair, "result_bytes": result, "budget": budget}


@jax.jit
def _self_batch(x):
    return _propagate(x, x, None, None, True)


@jax.jit
def _self_batch_nngp(x):
    return _propagate(x, x, None, None, False)


@jax.jit
def _cross_batch(xa, xb, sa, sb):
    return _propagate(xa, xb, sa, sb, True)[:2]


@jax.jit
def _cross_batch_nngp(xa, xb, sa, sb):
    return _propagate(xa, xb, sa, sb, False)[:2]


def _padded(idx, size):
    """Pad an index array to ``size`` (repeating its first entry) so every tile has one shape
    and jit compiles once."""
    return np.concatenate([idx, np.full(size - len(idx), idx[0], idx.dtype)]) \
        if len(idx) < size else idx


def _self_pass(x, tile, want_ntk, progress):
    n = x.shape[0]
    fn = _self_batch if want_ntk else _self_batch_nngp
    size = min(tile, n)

    def run(start, stop):
        idx = _padded(np.arange(start, stop), size)
        k, t, stats = fn(x[idx])
        keep = stop - start
        return k[:keep], (None if t is None else t[:keep]), [s[:keep] for s in stats]
    parts = _run_chunks(run, n, size, "kernelc: diagonal", progress)
    k = jnp.concatenate([p[0] for p in parts])
    t = None if parts[0][1] is None else jnp.concatenate([p[1] for p in parts])
    stats = [jnp.concatenate([p[2][i] for p in parts]) for i in range(len(parts[0][2]))]
    return k, t, stats


def _cross_pass(xa, xb, sa, sb, I, J, tile, want_ntk, progress):
    fn = _cross_batch if want_ntk else _cross_batch_nngp
    size = min(tile, len(I))

    def run(start, stop):
        i = _padded(I[start:stop], size)
        j = _padded(J[start:stop], size)
        k, t = fn(xa[i], xb[j], _gather(sa, i), _gather(sb, j))
        keep = stop - start
        return np.asarray(k[:keep]), None if t is None else np.asarray(t[:keep])
    parts = _run_chunks(run, len(I), size, "kernelc: Gram tiles", progress)
    k = np.concatenate([p[0] for p in parts])
    t = None if parts[0][1] is None else np.concatenate([p[1] for p in parts])
    return k, t


def _pair_indices(n1, n2, gram, mirror):
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


def _same_inputs(x1, x2):
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


def _warn_inexact_quadrature(dtype):
    """One QuadratureWarning per Gauss-Hermite map whose estimated relative error (recorded by
    _quadrature_estimate during this call) is above QUADRATURE_TOLERANCE[dtype]."""
    tol = QUADRATURE_TOLERANCE[str(np.dtype(dtype))]
    for label, (error, scale, n) in sorted(_QUADRATURE_ERRORS.items()):
        rel = error / scale if scale > 0 else 0.0
        if rel > tol:
            warnings.warn(
                f"{label} is computed by {n}-point Gauss-Hermite quadrature, which is accurate "
                f"only to ~{rel:.1e} (relative) at the largest pre-activation variance of these "
                f"inputs (tolerance {tol:.0e} for {np.dtype(dtype)}); give the nonlinearity a "
                f"higher degree= (up to 256), or smaller inputs/weights",
                QuadratureWarning, stacklevel=3)


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
    x1 = _check_inputs(x1, "x1")
    x2 = None if x2 is None else _check_inputs(x2, "x2")
    want_ntk = "ntk" in get
    n1 = x1.shape[0]
    n2 = n1 if x2 is None else x2.shape[0]
    mirror = symmetric and x2 is None and OUTPUT_IS_VECTOR
    plan = plan_memory(n1, None if x2 is None else n2, dtype, max_memory, mirror)
    # self pairs: the diagonal of a Gram matrix and every pair of identical inputs; the value
    # comes from the self pass of x1 (of the smaller index in a Gram matrix: stays symmetric)
    x1c = np.asarray(x1, dtype)
    SI, SJ = _same_inputs(x1c, x1c if x2 is None else np.asarray(x2, dtype))
    SK = np.minimum(SI, SJ) if x2 is None else SI
    _QUADRATURE_ERRORS.clear()
    with _x64_context(dtype):
        xa = jnp.asarray(x1, dtype)
        xb = xa if x2 is None else jnp.asarray(x2, dtype)
        k1, t1, s1 = _self_pass(xa, plan["tile_pairs"], want_ntk, progress)
        if x2 is None:
            s2 = s1
        else:
            _, _, s2 = _self_pass(xb, plan["tile_pairs"], want_ntk, progress)
        I, J = _pair_indices(n1, n2, x2 is None, mirror)
        shape = (n1, n2) + tuple(k1.shape[1:])
        out = {}
        if len(I):
            k, t = _cross_pass(xa, xb, s1, s2, I, J, plan["tile_pairs"], want_ntk, progress)
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
    _warn_inexact_quadrature(dtype)
    return out[get[0]] if single else out
