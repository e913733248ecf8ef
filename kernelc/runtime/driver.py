"""The driver of every generated module: input checks, the memory plan, tiles, progress, and
the tiled ``kernel_fn`` around a module's ``_propagate`` (jax and numpy only).

A generated module defines ``_propagate(xa, xb, stats_a, stats_b, want_ntk, params=None)`` (the
kernels of the input pairs (xa[p], xb[p]), layer by layer, at the hyperparameters ``params``,
its DEFAULT_PARAMS when None) and its sizes, then calls :func:`tiled_kernel` once to get
``kernel_fn`` and ``plan_memory``. :mod:`kernelc.runtime.pure` is the untiled, traceable form.
"""
import os
import sys
import time
import warnings

import numpy as np
import jax
import jax.numpy as jnp

from kernelc.runtime import RUNTIME_VERSION
from kernelc.runtime.store import GramStore, fingerprint
from kernelc.runtime.errors import (InputError, MemoryBudgetError, PrecisionWarning,
                                    QuadratureWarning)
from kernelc.runtime.maps import (PRECISION_ESTIMATES, PRECISION_ROUNDING, QUADRATURE_ERRORS,
                                  fast_maps, precision_tracking)

__all__ = ["tiled_kernel", "x64_context", "check_inputs", "budget_bytes", "format_bytes",
           "Progress", "progress_shown", "in_notebook", "tqdm_bar", "run_chunks", "pair_indices", "same_inputs", "QUADRATURE_TOLERANCE",
           "warn_inexact_quadrature", "PRECISION_TOLERANCE", "precision_estimate",
           "warn_imprecise", "CompiledPass", "Placement", "count_operations",
           "COMPILE_SECONDS_PER_OPERATION", "COMPILE_NOTICE_SECONDS"]

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


def in_notebook():
    """True when stderr is a Jupyter kernel's output stream (ipykernel's OutStream): not a
    terminal, but a progress widget shows there."""
    return type(sys.stderr).__module__.split(".")[0] == "ipykernel"


def tqdm_bar(total, label, after):
    """A ``tqdm.auto`` bar (a widget in Jupyter, text in a terminal) shown once the job has run
    for ``after`` seconds, or None when tqdm is not installed: it is an optional dependency
    (``kernelc[progress]``), and this package needs jax and numpy only."""
    try:
        import tqdm.auto
    except ImportError:
        return None
    return tqdm.auto.tqdm(total=total, desc=label, delay=after, unit="tile", leave=True)


def progress_shown(enabled):
    """Whether progress is shown: as asked (True/False), or by default (None) when stderr is a
    terminal or a Jupyter kernel's stream."""
    return (sys.stderr.isatty() or in_notebook()) if enabled is None else bool(enabled)


class Progress:
    """Progress of ``total`` steps, shown once a computation has run for ``after`` seconds: a
    ``tqdm.auto`` bar when tqdm is installed (a widget in Jupyter), else a text bar on stderr.

    ``enabled=None`` shows it when stderr is a terminal or a Jupyter kernel's stream (a text bar
    needs a terminal: without tqdm, a notebook shows nothing unless ``enabled=True``)."""

    def __init__(self, total, label, enabled=None, after=2.0):
        self.total, self.label = total, label
        self.after = after if enabled is None else 0.0  # asked for explicitly: show at once
        self.enabled = progress_shown(enabled)
        self.bar = tqdm_bar(total, label, self.after) if self.enabled else None
        if enabled is None and self.bar is None and in_notebook():
            self.enabled = False  # by default no text bar in a notebook: it cannot redraw there
        self.start = time.perf_counter()
        self.shown = False

    def update(self, done):
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(done - self.bar.n)
            if done >= self.total:
                self.bar.close()
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


#: seconds of XLA compilation per traced array operation: a rough starting value (2-core CPU),
#: replaced by the rate each compilation in this process measures
COMPILE_SECONDS_PER_OPERATION = [1e-3]
#: a compilation estimated to take longer is announced (when progress is shown)
COMPILE_NOTICE_SECONDS = 5.0


def count_operations(jaxpr):
    """Equations of a jaxpr, those of its sub-jaxprs (loop bodies, branches) included."""
    count = 0
    for eqn in jaxpr.eqns:
        count += 1
        for param in eqn.params.values():
            for sub in (param if isinstance(param, (tuple, list)) else (param,)):
                inner = getattr(sub, "jaxpr", None)
                inner = getattr(inner, "jaxpr", inner)  # a ClosedJaxpr holds the Jaxpr
                if inner is not None and hasattr(inner, "eqns"):
                    count += count_operations(inner)
    return count


class CompiledPass:
    """One pass of ``_propagate`` (self or cross), traced and compiled ahead of time once per
    shapes of its arguments. Tracing first gives the number of array operations, so a long
    compilation is announced with its estimate (``operations × seconds per operation``, the
    rate measured by the compilations before it) before XLA starts, and its time is reported
    when it ends; compiling a deep network takes ~1 ms per operation on a 2-core CPU."""

    def __init__(self, fn, label):
        self.jitted, self.label, self.compiled = jax.jit(fn), label, {}
        self.progress = None  # kernel_fn sets it for the call

    def __call__(self, *args):
        leaves, tree = jax.tree_util.tree_flatten(args)
        key = (tree, tuple((leaf.shape, str(leaf.dtype), getattr(leaf, "sharding", None))
                           for leaf in leaves))
        compiled = self.compiled.get(key)
        if compiled is None:
            compiled = self.compiled[key] = self._compile(args, leaves)
        return compiled(*args)

    def _compile(self, args, leaves):
        start = time.perf_counter()
        traced = self.jitted.trace(*args)
        operations = count_operations(traced.jaxpr.jaxpr)
        estimate = operations * COMPILE_SECONDS_PER_OPERATION[0]
        announce = progress_shown(self.progress) and estimate > COMPILE_NOTICE_SECONDS
        dtype = leaves[0].dtype if leaves else ""
        if announce:
            sys.stderr.write(f"kernelc: compiling the {self.label} for {dtype} "
                             f"({operations:,} array operations, ~{estimate:.0f} s estimated; "
                             "once per input shape) ...")
            sys.stderr.flush()
        compile_start = time.perf_counter()
        compiled = traced.lower().compile()
        elapsed = time.perf_counter() - compile_start
        if operations:
            COMPILE_SECONDS_PER_OPERATION[0] = elapsed / operations
        if announce:
            sys.stderr.write(f" done in {time.perf_counter() - start:.1f} s\n")
            sys.stderr.flush()
        return compiled


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


class Placement:
    """Where the tiles run: on one device (arrays stay where JAX puts them), or split over a
    1-d mesh of devices along the pair axis. Every operation of ``_propagate`` acts on each
    pair separately, so XLA partitions a tile into ``count`` equal slices, one per device,
    without communication; the results equal one device's to rounding (a slice of a tile is
    vectorised differently: ≤ 3e-17 in float64, 2e-8 in float32, measured)."""

    def __init__(self, devices=None):
        devices = jax.local_devices() if devices is None else devices
        try:
            devices = list(devices)
        except TypeError:
            devices = None
        if not devices or not all(isinstance(d, jax.Device) for d in devices):
            raise InputError("devices must be a non-empty list of JAX devices (e.g. "
                             f"jax.devices()), got {devices!r}")
        self.devices, self.count = devices, len(devices)
        self.sharding = None
        if self.count > 1:
            mesh = jax.sharding.Mesh(np.array(devices), ("pairs",))
            self.sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("pairs"))

    def tile(self, tile, n):
        """The size of the tiles of ``n`` items under a budget of ``tile``: at most n (at least
        1), rounded up to a multiple of the device count (equal slices). The cross pass and
        the on-disk store (which counts the tiles) both take it from here."""
        return -(-min(tile, max(n, 1)) // self.count) * self.count

    def put(self, arrays):
        """The arrays of one tile, split over the devices along their first (pair) axis."""
        return arrays if self.sharding is None else jax.device_put(arrays, self.sharding)

    def join(self, arrays):
        """The tiles' results in one array: on the device (one device), or on the host (several:
        the cross pass indexes them there, then splits its tiles again)."""
        if self.sharding is None:
            return jnp.concatenate(arrays)
        return np.concatenate([np.asarray(a) for a in arrays])


def self_pass(fn, x, tile, progress, placement=None):
    """The self pairs (x[i], x[i]) by tiles of ``tile`` inputs: (K, Θ or None, per-site variances)."""
    placement = placement or Placement([jax.devices()[0]])
    n = x.shape[0]
    size = placement.tile(tile, n)

    def run(start, stop):
        idx = padded(np.arange(start, stop), size)
        k, t, stats = fn(placement.put(x[idx]))
        keep = stop - start
        return k[:keep], (None if t is None else t[:keep]), [s[:keep] for s in stats]
    parts = run_chunks(run, n, size, "kernelc: diagonal", progress)
    join = placement.join
    k = join([p[0] for p in parts])
    t = None if parts[0][1] is None else join([p[1] for p in parts])
    stats = [join([p[2][i] for p in parts]) for i in range(len(parts[0][2]))]
    return k, t, stats


def cross_pass(fn, xa, xb, sa, sb, I, J, tile, progress, placement=None, store=None,
               mirror=False):
    """The pairs (xa[I[p]], xb[J[p]]) by tiles of ``tile`` pairs, as numpy arrays (K, Θ or None).
    With a :class:`~kernelc.runtime.store.GramStore` each tile is written to disk as it
    finishes (and mirrored to (J, I) when ``mirror``), tiles it holds already are skipped, and
    nothing is returned."""
    placement = placement or Placement([jax.devices()[0]])
    size = placement.tile(tile, len(I))

    def run(start, stop):
        if store is not None and store.done[start // size]:
            return None  # finished by an earlier, interrupted run
        i = padded(I[start:stop], size)
        j = padded(J[start:stop], size)
        k, t = fn(*placement.put((xa[i], xb[j], [s[i] for s in sa], [s[j] for s in sb])))
        keep = stop - start
        k, t = np.asarray(k[:keep]), None if t is None else np.asarray(t[:keep])
        if store is None:
            return k, t
        store.write(start // size, {name: v for name, v in (("nngp", k), ("ntk", t))
                                    if name in store.arrays}, I[start:stop], J[start:stop], mirror)
        return None
    parts = run_chunks(run, len(I), size, "kernelc: Gram tiles", progress)
    if store is not None:
        return None
    k = np.concatenate([p[0] for p in parts])
    t = None if parts[0][1] is None else np.concatenate([p[1] for p in parts])
    return k, t


def all_finite(array, rows=1024):
    """No NaN or inf in ``array``, checked by blocks of rows (a memory-mapped Gram matrix is
    not read into memory at once)."""
    return all(np.all(np.isfinite(array[i:i + rows])) for i in range(0, len(array), rows))


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


#: estimated float32 rounding error, in correlation units |ΔK| / √(K(x,x) K(x',x')), above which
#: kernel_fn warns (PrecisionWarning); float64 is not checked (docs/precision.md)
PRECISION_TOLERANCE = 1e-3


def precision_estimate():
    """``(nngp, ntk, rows)`` from the estimates recorded during the last kernel_fn call: the
    estimated float32 error of the outputs (ntk is nan when it was not computed, both are 0
    without a nonlinearity) and the per-nonlinearity rows ``(label, nngp, ntk, slope, gain)``
    in program order (:func:`kernelc.runtime.maps.track_precision`); a row's ntk is at least
    its nngp (the weight layers after a map add K to Θ: Θ⁺ = σ_w² Θ + K⁺, or + n_in K)."""
    rows = []
    for (_, label), (nngp, ntk, slope, gain) in sorted(PRECISION_ESTIMATES.items()):
        rows.append((label, nngp, max(ntk, nngp) if ntk == ntk else ntk, slope, gain))
    if not rows:
        return 0.0, 0.0, rows
    after = PRECISION_ROUNDING[1] * 2.0 ** -24  # the linear layers after the last map
    return rows[-1][1] + after, rows[-1][2] + after, rows


def warn_imprecise(dtype, get):
    """One PrecisionWarning when the estimated float32 error of a requested kernel is above
    PRECISION_TOLERANCE, naming the nonlinearity where the estimate first passes it."""
    if str(np.dtype(dtype)) != "float32" or not PRECISION_ESTIMATES:
        return
    tol = PRECISION_TOLERANCE
    nngp, ntk, rows = precision_estimate()
    bad = [(name, column, value) for name, column, value in (("NNGP", 1, nngp), ("NTK", 2, ntk))
           if name.lower() in get and value > tol]  # nan (not computed) compares False
    if not bad:
        return
    first = next(row for row in rows if any(row[column] > tol for _, column, _ in bad))
    worst = max(row[3] for row in rows)
    # past ~1 (every digit of the correlation lost) the first-order estimate means nothing more
    kernels = " and ".join(f"{name} ~{value:.1e}" if value < 1 else f"{name} over 100%"
                           for name, _, value in bad)
    if worst > 1:
        why = (f"near correlation 1 the nonlinearities stretch correlations by up to {worst:.2g}x "
               "per layer (a chaotic network), so the rounding errors of nearly identical inputs "
               "or patches grow geometrically with depth")
    else:
        why = ("near correlation 1 the NTK factor K̇ changes steeply (relu-like nonlinearities "
               "have a square-root edge there), so rounding errors of nearly identical inputs or "
               "patches move the NTK by ~1e-4 per layer")
    warnings.warn(
        f"float32 kernels may be inaccurate: estimated rounding error {kernels} (relative to "
        f"sqrt(K(x,x) K(x',x')); tolerance {tol:.0e}), above tolerance from {first[0]} on: {why}. "
        "Use dtype='float64' (CLI: --dtype float64)", PrecisionWarning, stacklevel=3)


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
    def traced(check, fast, fn, label):
        # the precision statements (check) and the fast angles (fast) are switched at trace time
        def run(*args):
            with precision_tracking(check), fast_maps(fast):  # (kernel_fn's argument shadows it)
                return fn(*args)
        return CompiledPass(run, label)

    # (want_ntk, check_precision, fast_maps) -> (self pass, cross pass), each compiled once per
    # shape (and only when used)
    batches = {(want, check, fast): (
        traced(check, fast, lambda x, w=want: propagate(x, x, None, None, w),
               "diagonal pass" + " (NNGP+NTK)" * want),
        traced(check, fast, lambda xa, xb, sa, sb, w=want: propagate(xa, xb, sa, sb, w)[:2],
               "Gram-tile pass" + " (NNGP+NTK)" * want))
        for want in (True, False) for check in (True, False) for fast in (None, True, False)}

    def plan_memory(n1, n2=None, dtype="float32", max_memory=None, symmetric=True,
                    results_on_disk=False):
        """Predicted bytes of the result and of one tile, and the tile size (pairs) under budget
        (``results_on_disk``: the Gram matrices are written to files, not held in memory)."""
        itemsize = np.dtype(dtype).itemsize
        per_pair = bytes_per_pair * itemsize // 4
        budget = budget_bytes(max_memory)
        n_pairs = n1 * (n1 - 1) // 2 if (n2 is None and symmetric) else n1 * (n2 or n1)
        result = 0 if results_on_disk else (n1 * (n2 or n1)) * output_entries * itemsize * 2
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
                  progress=None, symmetric=True, check_precision=True, devices=None,
                  out=None, fast_maps=None):
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
        progress bar (default: when stderr is a terminal or a Jupyter kernel's stream and the
        job runs for over 2 s; a ``tqdm.auto`` bar, a widget in Jupyter, when tqdm is installed,
        else a text bar on stderr).
        ``check_precision``: in float32, estimate the rounding error after each nonlinearity
        and warn (PrecisionWarning) when a requested kernel may be off by more than
        PRECISION_TOLERANCE (docs/precision.md); False skips the estimate and its cost (up to
        ~1.5x for erf-like maps, docs/performance.md). float64 checks nothing.
        ``devices``: the JAX devices the tiles are split over (default: every local device of
        the default backend, e.g. all GPUs of a node; one CPU device on a plain CPU machine);
        each tile's pairs are divided evenly between them (docs/performance.md, "Devices").
        ``out``: a folder; the Gram matrices are written there tile by tile (``nngp.npy``,
        ``ntk.npy``, memory-mapped, not held in memory) and returned opened read-only from it;
        the same call after an interruption computes only the missing tiles
        (:mod:`kernelc.runtime.store`).
        ``fast_maps``: the arc-cosine of relu and leaky_relu (α ≥ 0) maps by a minimax
        polynomial instead of atan2 (~5x faster per map on CPU); proven error of the map at the
        correlation it reads ≤ 3 roundoffs of the dtype relative to sqrt(K(x,x) K(x',x'))
        (float32: 1.8e-7; float64: 6e-15), that correlation itself within 6 roundoffs instead
        of ~2.5 (docs/math/fast-maps.md). None (default): fast in float32 only; True: also in
        float64; False: atan2 everywhere.
        """
        single = isinstance(get, str)
        get = (get,) if single else tuple(get)
        unknown = [g for g in get if g not in ("nngp", "ntk")]
        if unknown or not get:
            raise InputError(f"get must name 'nngp' and/or 'ntk', got {get!r}")
        if str(np.dtype(dtype)) not in ("float32", "float64"):
            raise InputError(f"dtype must be float32 or float64, got {dtype!r}")
        placement = Placement(devices)
        x1 = check_inputs(x1, "x1", input_shape)
        x2 = None if x2 is None else check_inputs(x2, "x2", input_shape)
        want_ntk = "ntk" in get
        if fast_maps not in (None, True, False):
            raise InputError(f"fast_maps must be None, True or False, got {fast_maps!r}")
        self_fn, cross_fn = batches[want_ntk, bool(check_precision), fast_maps]
        self_fn.progress = cross_fn.progress = progress
        n1 = x1.shape[0]
        n2 = n1 if x2 is None else x2.shape[0]
        mirror = symmetric and x2 is None and output_is_vector
        plan = plan_memory(n1, None if x2 is None else n2, dtype, max_memory, mirror,
                           results_on_disk=out is not None)
        # self pairs: the diagonal of a Gram matrix and every pair of identical inputs; the value
        # comes from the self pass of x1 (of the smaller index in a Gram matrix: stays symmetric)
        x1c = np.asarray(x1, dtype)
        SI, SJ = same_inputs(x1c, x1c if x2 is None else np.asarray(x2, dtype))
        SK = np.minimum(SI, SJ) if x2 is None else SI
        QUADRATURE_ERRORS.clear()
        PRECISION_ESTIMATES.clear()
        with x64_context(dtype):
            xa = jnp.asarray(x1, dtype)
            xb = xa if x2 is None else jnp.asarray(x2, dtype)
            k1, t1, s1 = self_pass(self_fn, xa, plan["tile_pairs"], progress, placement)
            if x2 is None:
                s2 = s1
            else:
                _, _, s2 = self_pass(self_fn, xb, plan["tile_pairs"], progress, placement)
            I, J = pair_indices(n1, n2, x2 is None, mirror)
            if len(SI):  # pairs of identical inputs come from the self pass: not computed again
                keep = ~np.isin(I * n2 + J, SI * n2 + SJ)
                I, J = I[keep], J[keep]
            shape = (n1, n2) + tuple(k1.shape[1:])
            grams = {}
            if out is not None:
                tile = placement.tile(plan["tile_pairs"], len(I))  # the cross pass's tiles
                run = {"runtime_version": RUNTIME_VERSION, "tile_pairs": tile,
                       "pairs": int(len(I)), "dtype": str(np.dtype(dtype)),
                       "fingerprint": fingerprint(
                           input_shape, x1c, None if x2 is None else np.asarray(x2, dtype),
                           sorted(get), mirror, k1, t1)}  # k1, t1: identify the network
                store = GramStore(out, run, {name: shape for name in get}, dtype,
                                  -(-len(I) // tile))
                grams = store.arrays
            k = t = None
            if len(I):  # on disk: the tiles are written there, nothing comes back
                k, t = cross_pass(cross_fn, xa, xb, s1, s2, I, J, plan["tile_pairs"], progress,
                                  placement, *((store, mirror) if out is not None else ())) \
                    or (None, None)
            for name, vals, diag in (("nngp", k, k1), ("ntk", t, t1)):
                if name not in get:
                    continue
                if out is None:
                    gram = grams[name] = np.zeros(shape, dtype=np.dtype(dtype))
                    if vals is not None:
                        gram[I, J] = vals
                    if mirror:
                        gram[J, I] = vals if vals is not None else 0
                gram = grams[name]
                if len(SI):  # self pairs: from the self pass, also when symmetric=False
                    gram[SI, SJ] = np.asarray(diag)[SK]
                if not all_finite(gram):
                    raise InputError(f"the {name} Gram matrix has non-finite entries; the inputs "
                                     "may be too large for float32 (try dtype='float64')")
            if out is not None:
                grams = store.finished()
        jax.effects_barrier()  # every callback of this call has recorded its estimate
        warn_inexact_quadrature(dtype)
        warn_imprecise(dtype, get)
        return grams[get[0]] if single else grams

    # (want_ntk, check, fast) -> (self, cross): for inspection
    kernel_fn.compiled_passes = batches
    return kernel_fn, plan_memory
