"""The driver of every generated module: input checks, the memory plan, tiles, progress, and
the tiled ``kernel_fn`` around a module's ``_propagate`` (jax and numpy only).

A generated module defines ``_propagate(xa, xb, stats_a, stats_b, want_ntk, params=None,
self_pairs=None)`` (the kernels of the input pairs (xa[p], xb[p]), layer by layer, at the
hyperparameters ``params``, its DEFAULT_PARAMS when None) and its sizes, then calls
:func:`tiled_kernel` once to get ``kernel_fn`` and ``plan_memory``. One compiled pass serves
both the self pairs (x, x), whose per-site variances each nonlinearity reads off its own
diagonal (``self_pairs`` True), and the Gram tiles, which read them from the self pairs'
results: one program to trace, lower and compile, not two. :mod:`kernelc.runtime.pure` is the
untiled, traceable form.
"""
import json
import os
import sys
import time
import warnings
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import jax
import jax.numpy as jnp
from jax.experimental import multihost_utils

from kernelc.runtime import RUNTIME_VERSION
from kernelc.runtime.layouts import mirror_pairs
from kernelc.runtime.store import GramStore, StoreFollower, fingerprint
from kernelc.runtime.errors import (InputError, MemoryBudgetError, OutputError,
                                    PrecisionWarning, QuadratureWarning)
try:  # reads /proc and /sys files, which a standalone module may not: it falls back to sysconf
    from kernelc.hostmem import cgroup_room, meminfo_available
except ImportError:  # pragma: no cover - a standalone module without kernelc
    cgroup_room = meminfo_available = None
from kernelc.runtime.maps import (PRECISION_ESTIMATES, PRECISION_ROUNDING, QUADRATURE_ERRORS,
                                  fast_maps, precision_tracking, record_quadrature)
from kernelc.runtime.psd import check_grams

__all__ = ["tiled_kernel", "x64_context", "check_inputs", "check_get", "check_dtype",
           "budget_bytes", "format_bytes",
           "Progress", "progress_shown", "in_notebook", "tqdm_bar", "run_chunks", "pair_indices", "PairIndices", "same_inputs", "QUADRATURE_TOLERANCE",
           "warn_inexact_quadrature", "PRECISION_TOLERANCE", "precision_estimate",
           "warn_imprecise", "CompiledPass", "Placement", "count_operations", "compiled_bytes",
           "available_memory", "device_free_memory", "GramArrays",
           "COMPILE_SECONDS_PER_OPERATION", "COMPILE_NOTICE_SECONDS", "XLA_RUNTIME_MARGIN",
           "working_set_cap", "settle", "open_store", "merge_estimates", "compile_lowered",
           "refused_options", "CPU_COMPILER_OPTIONS", "COMPILER_OPTIONS_UNKNOWN"]

MAX_TILE = 4096  # pairs per tile at most: larger tiles stop paying off on CPU
MIN_TILE = 8  # items per device per tile at least (when the budget allows): one shape for small N
#: a compiled tile's peak is taken as this multiple of what XLA's buffer assignment reports
#: (memory_analysis): XLA:CPU's runtime holds working memory beyond it, measured at +2% to +16%
#: of the report on the bundled specs (benchmarks/memory.py, docs/performance.md)
XLA_RUNTIME_MARGIN = 1.25
#: XLA compile options of the passes compiled for CPU devices (options of these executables
#: only: JAX's global flags are untouched): XLA's loop-fusion emitters of before jax 0.6 and
#: no YNNPACK fusions ran the peers' p4 and CNN-GAP networks 1.6-1.8x and 1.2x faster, and
#: their first calls 1.1-1.2x faster, than XLA's defaults with jax 0.10 (``python
#: benchmarks/xla_cpu_options.py``; docs/performance.md, "XLA's CPU options"). Without
#: YNNPACK a fused reduction is one running sum: the pools sum pairwise for that
#: (runtime.stencils.pairwise_sum). An option the installed jaxlib does not know is dropped
#: (COMPILER_OPTIONS_UNKNOWN). Clear the dict for XLA's defaults.
CPU_COMPILER_OPTIONS = {"xla_cpu_use_fusion_emitters": False,
                        "xla_cpu_experimental_ynn_fusion_type": ""}
COMPILER_OPTIONS_UNKNOWN = {}  # option -> the installed jaxlib's refusal ("No such compile option")


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


def check_inputs(x, name, shape, dtype=None):
    """``x`` as a numpy array of ``shape`` (box and channels), or InputError saying why not.
    With ``dtype`` ("float32"/"float64"), also refused: an input whose sum of squares
    Σ x² overflows that dtype (the kernels start from x·x'; an overflowed variance made the
    bounded maps of erf and gelu give ±W_std² without a word)."""
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
    if dtype is not None:
        check_magnitude(x, name, dtype)
    return x


def check_magnitude(x, name, dtype, rows=4096):
    """InputError when log Σ x² of an input exceeds log(max of ``dtype``). Each input is scaled
    by its largest |value| m first, log Σ x² = 2 log m + log Σ (x/m)², so nothing overflows
    here; float64 blocks of ``rows`` inputs keep the copy small."""
    limit = np.log(np.finfo(dtype).max)
    flat = x.reshape(len(x), -1)
    for start in range(0, len(flat), rows):
        block = np.abs(flat[start:start + rows]).astype(np.float64)
        largest = np.max(block, axis=1)
        scale = np.where(largest > 0, largest, 1.0)
        squares = np.sum((block / scale[:, None]) ** 2, axis=1)
        log_sum = 2 * np.log(scale) + np.log(np.maximum(squares, 1.0))
        if np.any(log_sum > limit):
            k = start + int(np.argmax(log_sum))
            hint = "try dtype='float64' or scale them down" if dtype == "float32" else \
                "scale them down"
            raise InputError(f"{name} has values too large for {dtype}: the sum of squares of "
                             f"input {k} is ~1e{log_sum.max() / np.log(10):.0f}, beyond the "
                             f"largest {dtype} ({np.finfo(dtype).max:.3g}), and the kernels "
                             f"start from x·x' ({hint})")


def check_get(get):
    """``(single, names)`` for a ``get`` argument: "nngp" or "ntk" (single), or a non-empty
    iterable of them; InputError otherwise (None, a number, an unknown name)."""
    single = isinstance(get, str)
    try:
        names = (get,) if single else tuple(get)
    except TypeError:
        names = None
    if not names or isinstance(get, (bytes, dict)) or any(g not in ("nngp", "ntk") for g in names):
        raise InputError(f"get must name 'nngp' and/or 'ntk' (a string, or a tuple of them), "
                         f"got {get!r}")
    return single, names


def check_dtype(dtype, name="dtype"):
    """``dtype`` as the text "float32" or "float64", or InputError (anything numpy cannot read
    as a dtype, None included, or another dtype)."""
    try:
        text = None if dtype is None else str(np.dtype(dtype))
    except (TypeError, ValueError):
        text = None
    if text not in ("float32", "float64"):
        raise InputError(f"{name} must be float32 or float64, got {dtype!r}")
    return text


def available_memory():
    """Bytes this process may still allocate on the host: the least of the physical memory,
    the kernel's MemAvailable and the room left under the cgroup's memory limit
    (:mod:`kernelc.hostmem`); without kernelc (a standalone module), the free physical pages."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover
        total = 8 << 30
    if meminfo_available is None:  # pragma: no cover - a standalone module
        try:
            return min(total, os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))
        except (ValueError, OSError, AttributeError):
            return total
    bounds = [total, meminfo_available(), cgroup_room(below=total)]
    return min(b for b in bounds if b is not None)


def device_free_memory(devices):
    """Bytes free on the emptiest-to-be device among ``devices`` (``memory_stats()``:
    ``bytes_limit - bytes_in_use``, what JAX's allocator may still hand out on a GPU/TPU), or
    None when the devices do not report it (CPU: the tiles live in host memory)."""
    free = []
    for device in devices:
        try:
            stats = device.memory_stats()
        except Exception:  # noqa: BLE001 - a backend without memory statistics
            stats = None
        if stats and "bytes_limit" in stats:
            free.append(int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0)))
    return min(free) if free else None


#: the default budget is this fraction of :func:`available_memory` (what the process may still
#: allocate when the call starts): room for the caller's own arrays and the allocator's slack
DEFAULT_BUDGET_FRACTION = 0.5


def budget_bytes(max_memory):
    """The memory budget in bytes: ``max_memory`` (bytes, or text such as "4GB", "512MiB"),
    else ``KERNELC_MAX_MEMORY``, else half of the memory this process may still allocate
    (:func:`available_memory`: RAM, MemAvailable and the cgroup's limit)."""
    if max_memory is None:
        env = os.environ.get("KERNELC_MAX_MEMORY")
        if env:
            max_memory = env
    if max_memory is None:
        return int(available_memory() * DEFAULT_BUDGET_FRACTION)
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
    if isinstance(value, int) and not isinstance(value, bool):
        value = float(value)  # np.isfinite refuses an int beyond int64 (2**70)
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
#: the threads XLA compiles in (made on first use): tile_bytes lowers the pass at every size the
#: call uses first (x1's and x2's self pairs may differ), so one compiles while the next is traced
COMPILE_THREADS = []


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


def compiled_bytes(compiled):
    """Bytes one run of an XLA executable holds at its peak, as XLA's buffer assignment reports
    it (``memory_analysis()``): its arguments, outputs and temporaries (less the outputs that
    alias arguments), per device; None when the backend does not report it."""
    try:
        m = compiled.memory_analysis()
    except Exception:  # noqa: BLE001 - a backend without the analysis
        return None
    if m is None:
        return None
    return int(m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes
               - getattr(m, "alias_size_in_bytes", 0))


def _sharding_key(leaf):
    """The devices an argument lives on (an array or a ShapeDtypeStruct): a compiled pass is
    kept per device set, so that one compiled ahead of time for ShapeDtypeStructs (the memory
    plan) is the one a tile of real arrays on those devices runs."""
    sharding = getattr(leaf, "sharding", None)
    return None if sharding is None else tuple(sorted(d.id for d in sharding.device_set))


class CompiledPass:
    """The pass of ``_propagate`` (self pairs and Gram tiles alike), traced and compiled ahead
    of time once per shapes of its arguments (and devices). Tracing first gives the number of
    array operations, so a long compilation is announced with its estimate (``operations ×
    seconds per operation``, the rate measured by the compilations before it) before XLA
    starts, and its time is reported when it ends; compiling a deep network takes ~1 ms per
    operation on a 2-core CPU. The driver pads every tile to one of a few sizes
    (:meth:`Placement.tile`), so a new N reuses the compiled passes; ``compilations`` counts
    the XLA compilations so far, and ``bytes_per_item`` maps a dtype to the largest per-item
    memory XLA reported for a compiled size (the memory plan's first guess of a tile)."""

    def __init__(self, fn, label):
        self.jitted, self.label, self.compiled = jax.jit(fn), label, {}  # key -> Compiled/Future
        self.reported = {}  # id of a compiled pass in self.compiled -> compiled_bytes
        self.out_info = {}  # key -> the outputs' shapes and dtypes (from the lowering)
        self.progress = None  # kernel_fn sets it for the call
        self.compilations = 0
        self.bytes_per_item = {}
        self.operations = None  # traced array operations (the same for every tile size)

    @staticmethod
    def _key(args):
        leaves, tree = jax.tree_util.tree_flatten(args)
        return leaves, (tree, tuple((tuple(leaf.shape), str(leaf.dtype), _sharding_key(leaf))
                                    for leaf in leaves))

    def __call__(self, *args):
        return self.executable(*args)(*args)

    def executable(self, *args):
        """The compiled pass for arguments like ``args`` (arrays, or ShapeDtypeStructs with
        their sharding): from the cache, or compiled now (or when the compilation that
        :meth:`outputs` started ends)."""
        leaves, key = self._key(args)
        compiled = self.compiled.get(key)
        if compiled is None:
            compiled = self._compile(args, leaves, key)
        if isinstance(compiled, Future):
            compiled = self.compiled[key] = compiled.result()
        return compiled

    def outputs(self, *args):
        """The shapes and dtypes (``OutInfo``) of the pass's outputs for arguments like
        ``args``, from its lowering; a compilation this starts runs in the background."""
        leaves, key = self._key(args)
        if key not in self.compiled:
            self._compile(args, leaves, key)
        return self.out_info[key]

    def memory(self, *args):
        """Peak bytes (per device) of one run on arguments like ``args``, from XLA's report of
        the compiled pass (:func:`compiled_bytes`), compiling it if needed; None if unknown.
        Kept per compiled pass: XLA's analysis costs ~0.7 ms, a sixth of a small call."""
        compiled = self.executable(*args)
        if id(compiled) not in self.reported:
            self.reported[id(compiled)] = compiled_bytes(compiled)
        used = self.reported[id(compiled)]
        first = jax.tree_util.tree_leaves(args)[0]
        if used is not None:
            dtype = str(first.dtype)
            self.bytes_per_item[dtype] = max(self.bytes_per_item.get(dtype, 0),
                                             -(-used // first.shape[0]))
        return used

    def _compile(self, args, leaves, key):
        start = time.perf_counter()
        traced = self.jitted.trace(*args)
        operations = self.operations = count_operations(traced.jaxpr.jaxpr)
        estimate = operations * COMPILE_SECONDS_PER_OPERATION[0]
        announce = progress_shown(self.progress) and estimate > COMPILE_NOTICE_SECONDS
        if announce:  # whole lines: the other pass may announce itself meanwhile
            sys.stderr.write(f"kernelc: compiling the {self.label} for "
                             f"{leaves[0].dtype if leaves else ''} ({operations:,} array "
                             f"operations, ~{estimate:.0f} s estimated; once per tile size)\n")
            sys.stderr.flush()
        compile_start = time.perf_counter()
        lowered = traced.lower()
        self.out_info[key] = lowered.out_info  # (Compiled.out_info: from jax 0.6 only)
        self.compilations += 1

        def finish():
            compiled = compile_lowered(lowered, leaves)
            if operations:
                COMPILE_SECONDS_PER_OPERATION[0] = (time.perf_counter() - compile_start) / operations
            if announce:
                sys.stderr.write(f"kernelc: compiled the {self.label} in "
                                 f"{time.perf_counter() - start:.1f} s\n")
                sys.stderr.flush()
            return compiled
        # XLA compiles in a thread (it releases the GIL) while the caller traces the next pass
        if not COMPILE_THREADS:
            COMPILE_THREADS.append(ThreadPoolExecutor(2, "kernelc-compile"))
        self.compiled[key] = COMPILE_THREADS[0].submit(finish)
        return self.compiled[key]


def refused_options(error, options):
    """The names in ``options`` that a jaxlib's compile ``error`` refuses as unknown."""
    return [k for k in options if f"No such compile option: '{k}'" in str(error)]


def compile_lowered(lowered, leaves):
    """``lowered.compile()``, with CPU_COMPILER_OPTIONS when the arguments ``leaves`` live on
    CPU devices (those without a sharding: on JAX's default backend's). An option the
    installed jaxlib refuses by name is dropped for the process and the compilation retried
    with the others; any other failure with options is retried without them, and when that
    succeeds the options are dropped for the process (a jaxlib that takes an option's name
    but not its value)."""
    devices = set()
    for leaf in leaves:
        sharding = getattr(leaf, "sharding", None)
        devices |= set(sharding.device_set) if sharding is not None else set(jax.devices()[:1])
    options = {k: v for k, v in CPU_COMPILER_OPTIONS.items()
               if k not in COMPILER_OPTIONS_UNKNOWN} \
        if all(d.platform == "cpu" for d in devices) else {}
    if not options:
        return lowered.compile()
    try:
        return lowered.compile(compiler_options=options)
    except Exception as exc:  # noqa: BLE001 - jaxlib's error type differs across versions
        refusal = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        unknown = refused_options(exc, options)
        if unknown:
            COMPILER_OPTIONS_UNKNOWN.update((k, refusal) for k in unknown)
            return compile_lowered(lowered, leaves)
    compiled = lowered.compile()  # raises the failure that is not the options'
    COMPILER_OPTIONS_UNKNOWN.update((k, refusal) for k in options)
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


def _size_at_least(m: int) -> int:
    """The smallest s in {2^k, 3·2^k} with s >= m."""
    p = 1 << (m - 1).bit_length()  # the smallest power of two >= m
    return 3 * p // 4 if p >= 4 and 3 * p // 4 >= m else p


def _size_at_most(m: int) -> int:
    """The largest s in {2^k, 3·2^k} with s <= m (m >= 1)."""
    p = 1 << (m.bit_length() - 1)  # the largest power of two <= m
    return 3 * p // 2 if p >= 2 and 3 * p // 2 <= m else p


class Placement:
    """Where the tiles run: on one device (arrays stay where JAX puts them), or split over a
    1-d mesh of devices along the pair axis. Every operation of ``_propagate`` acts on each
    pair separately, so XLA partitions a tile into ``count`` equal slices, one per device,
    without communication; the results equal one device's to rounding (a slice of a tile is
    vectorised differently: ≤ 3e-17 in float64, 2e-8 in float32, measured).

    Several processes (after the user's ``jax.distributed.initialize``): by default the mesh is
    global, every device of every process (``jax.devices()``), and every process runs the same
    tiles (SPMD: each computes its own devices' slices, built from its copy of the inputs by
    ``jax.make_array_from_callback``) and receives every tile's results
    (``multihost_utils.process_allgather``), so each holds the whole Gram matrix. ``devices``
    may also be this process's devices alone (each process computes on its own, no
    communication); devices of some other processes but not all are refused, since the
    exchanges (:meth:`gather`) involve every process."""

    def __init__(self, devices=None):
        if devices is None:  # one process: its local devices; several: all of them
            devices = jax.devices() if jax.process_count() > 1 else jax.local_devices()
        given = devices
        try:
            devices = None if isinstance(devices, str) else list(devices)
        except TypeError:
            devices = None
        if not devices or not all(isinstance(d, jax.Device) for d in devices):
            raise InputError("devices must be a non-empty list of JAX devices (e.g. "
                             f"jax.devices()), got {given!r}")
        if len(set(devices)) != len(devices):
            raise InputError(f"devices lists a device more than once: {devices!r}; give each "
                             "device once")
        here = jax.process_index()
        owners = {d.process_index for d in devices}
        if owners != {here} and owners != set(range(jax.process_count())):
            raise InputError(
                f"devices belong to the processes {sorted(owners)}, but this is process {here} "
                f"of {jax.process_count()}: give this process's devices only "
                "(jax.local_devices()) or the devices of every process (jax.devices())")
        self.devices, self.count = devices, len(devices)
        self.local = [d for d in devices if d.process_index == here]  # this process's share
        self.processes = len(owners)  # 1: this process computes alone
        self.sharding = None
        if self.count > 1:
            mesh = jax.sharding.Mesh(np.array(devices), ("pairs",))
            self.sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("pairs"))

    def tile(self, tile, n):
        """The size of the tiles of ``n`` items under a budget of ``tile`` items: ``count·s``
        with s in {2^k, 3·2^k} (a multiple of the device count: equal slices), the largest such
        size not above ``tile`` (at least ``count``), or the smallest one that holds all ``n``
        items when that is smaller. Tiles are padded to this size, so the compiled passes see
        only two shapes per octave and a new N (a learning curve: N = 20, 19, 18, ...) reuses
        them, while a tiny N does not pay for a large tile; a Gram matrix that fits in one tile
        computes less than 3/2 of its pairs (powers of two alone: up to 2×). Below MIN_TILE
        items per device a tile is padded to MIN_TILE unless the budget forbids it: the work is
        negligible there and every small N shares one compiled shape. The Gram tiles take the
        size of the larger input set's (one compiled pass for both), and the on-disk store
        counts the tiles by it."""
        slices = max(int(tile) // self.count, 1)
        need = -(-max(int(n), 1) // self.count)
        return self.count * min(_size_at_most(slices), max(_size_at_least(need), MIN_TILE))

    def like(self, shape, dtype):
        """A ShapeDtypeStruct of one tile's argument as :meth:`put` places it (to compile a
        pass ahead of time for the memory plan)."""
        return jax.ShapeDtypeStruct(shape, jnp.dtype(dtype), sharding=self.sharding or
                                    jax.sharding.SingleDeviceSharding(self.devices[0]))

    def put(self, arrays):
        """The arrays of one tile on the device (one device), or split over the devices along
        their first (pair) axis. Over several processes each process holds the whole host
        arrays (the same inputs everywhere) and copies only its own devices' slices."""
        if self.processes == 1:
            return jax.device_put(arrays, self.sharding or self.devices[0])
        return jax.tree_util.tree_map(
            lambda a: jax.make_array_from_callback(a.shape, self.sharding,
                                                   lambda index: a[index]), arrays)

    def fetch(self, arrays):
        """One tile's results (a pytree of arrays, None leaves kept) as numpy arrays, whole:
        over several processes every process receives every device's slice."""
        if self.processes > 1:
            arrays = multihost_utils.process_allgather(arrays, tiled=True)
        return jax.tree_util.tree_map(np.asarray, arrays)

    def gather(self, row):
        """The 1-d int64 ``row`` of every process, stacked (processes, len(row)) in process
        order; (1, len(row)) for this process alone. A collective: every process of a global
        placement must call it, with rows of one length."""
        row = np.asarray(row, np.int64)
        if self.processes == 1:
            return row[None]
        return np.asarray(multihost_utils.process_allgather(row)).reshape(self.processes, -1)


#: the errors a process may share with the others at an agreement point (:func:`settle`), by code
#: (their index + 1; 0: no error)
SETTLED_ERRORS = ("InputError", "MemoryBudgetError", "OutputError")


def settle(placement, error, row=()):
    """An agreement point of the processes of ``placement``: each gives the error it raised
    since the last one (or None) and an int row; returns the rows of every process (see
    :meth:`Placement.gather`), or raises. A process whose own step failed raises its error;
    the others raise the same kind of error naming it, instead of waiting forever in the next
    exchange for a process that has stopped. One process alone: its error, else its row."""
    if placement.processes == 1:
        if error is not None:
            raise error
        return np.asarray(row, np.int64)[None]
    kinds = (InputError, MemoryBudgetError, OutputError)  # SETTLED_ERRORS, in order
    code = 0 if error is None else 1 + next(i for i, kind in enumerate(kinds)
                                            if isinstance(error, kind))
    rows = placement.gather(np.concatenate([[code], np.asarray(row, np.int64)]))
    if error is not None:
        raise error
    failed = np.flatnonzero(rows[:, 0])
    if len(failed):
        first = int(failed[0])
        code = int(rows[first, 0]) - 1
        raise kinds[code](f"process {first} of {placement.processes} stopped with a "
                          f"{SETTLED_ERRORS[code]} (its own message says why), so every "
                          "process stops")
    return rows[:, 1:]


def self_pass(fn, x, stats_shapes, size, progress, placement=None):
    """The self pairs (x[i], x[i]) by tiles of ``size`` inputs (the last one padded with x[0], a
    valid input: no zero-variance NaN) through the pass ``fn``, every pair flagged a self pair
    (the stats it is given, zeros of ``stats_shapes``, are not read): (K, Θ or None, per-site
    variances), numpy arrays. ``x`` is a numpy array: every gather, slice and join is numpy's
    on the host, so the only XLA executables are the compiled passes, whose memory XLA reports
    (JAX's own indexing compiled a small executable per tile shape, ~60 MB more)."""
    placement = placement or Placement([jax.devices()[0]])
    n = x.shape[0]
    # the same for every tile: placed once
    unread, flags = placement.put(([np.zeros((size,) + tuple(shape), x.dtype)
                                    for shape in stats_shapes], np.ones(size, bool)))

    def run(start, stop):
        xs = placement.put(x[padded(np.arange(start, stop), size)])  # xa and xb: placed once
        k, t, stats = placement.fetch(fn(xs, xs, unread, unread, flags))
        keep = stop - start
        return k[:keep], None if t is None else t[:keep], [s[:keep] for s in stats]
    parts = run_chunks(run, n, size, "kernelc: diagonal", progress)
    k = np.concatenate([p[0] for p in parts])
    t = None if parts[0][1] is None else np.concatenate([p[1] for p in parts])
    stats = [np.concatenate([p[2][i] for p in parts]) for i in range(len(parts[0][2]))]
    return k, t, stats


class GramArrays:
    """The Gram matrices in memory, written tile by tile as the cross pass finishes them: the
    in-memory counterpart of :class:`~kernelc.runtime.store.GramStore` (same ``arrays``,
    ``done``, ``write``, ``finished``). Writing each tile into place holds the results once;
    a list of tiles concatenated at the end held them twice more at the peak."""

    writes = True  # it holds the matrices (a StoreFollower does not)

    def __init__(self, shapes: dict, dtype, n_tiles: int):
        self.arrays = {name: np.zeros(shape, np.dtype(dtype)) for name, shape in shapes.items()}
        self.done = np.zeros(n_tiles, bool)

    def write(self, tile, entries, I, J, mirror, swap=None):
        """One finished tile's values at (I, J), and at (J, I) when mirrored (``swap``: the
        values of the pairs (J, I) from those of (I, J), for a feature-map output)."""
        for name, vals in entries.items():
            self.arrays[name][I, J] = vals
            if mirror:
                self.arrays[name][J, I] = vals if swap is None else swap(vals)
        self.done[tile] = True

    def finished(self):
        return self.arrays


def cross_pass(fn, xa, xb, sa, sb, pairs, size, progress, placement, store, mirror=False,
               swap=None):
    """The pairs (xa[I[p]], xb[J[p]]) of numpy arrays (``I, J = pairs[start:stop]``, e.g. a
    :class:`PairIndices`) by tiles of ``size`` pairs through the compiled pass ``fn`` (no pair
    flagged a self pair: the variances are those of the self pass, ``sa``, ``sb``; the
    last tile padded by repeating its first pair), each written into ``store`` (a
    :class:`GramArrays` or an on-disk :class:`~kernelc.runtime.store.GramStore`) as it finishes,
    and mirrored to (J, I) when ``mirror`` (through ``swap`` for a feature-map output); tiles the
    store holds already are skipped."""
    flags = placement.put(np.zeros(size, bool))  # the same for every tile: placed once

    def run(start, stop):
        if store.done[start // size]:
            return  # finished by an earlier, interrupted run
        I, J = pairs[start:stop]
        if not len(I):  # every pair of this tile is a pair of identical inputs
            store.write(start // size, {}, I, J, mirror, swap)
            return
        i, j = padded(I, size), padded(J, size)
        k, t = placement.fetch(fn(*placement.put(
            (xa[i], xb[j], [s[i] for s in sa], [s[j] for s in sb])), flags)[:2])
        keep = len(I)  # numpy slices: no XLA executable per tile shape (see self_pass)
        k, t = k[:keep], None if t is None else t[:keep]
        store.write(start // size, {name: v for name, v in (("nngp", k), ("ntk", t))
                                    if name in store.arrays}, I, J, mirror, swap)
    run_chunks(run, len(pairs), size, "kernelc: Gram tiles", progress)


def open_store(placement, out, run, shapes, dtype, n_tiles):
    """The on-disk store of a run in the folder ``out`` (:class:`GramStore`). Over several
    processes process 0 alone creates, writes and marks it, as one process would (so resuming
    works the same); the others get a :class:`StoreFollower` with process 0's marks, so that
    every process skips the same finished tiles and the exchanges of the tiles stay in step
    (the marks travel as int64, 8 bytes per tile)."""
    if placement.processes == 1:
        return GramStore(out, run, shapes, dtype, n_tiles)
    store, error = None, None
    if jax.process_index() == 0:
        try:
            store = GramStore(out, run, shapes, dtype, n_tiles)
        except OutputError as exc:
            error = exc
    done = settle(placement, error, np.zeros(n_tiles) if store is None else store.done)[0]
    return store or StoreFollower(out, shapes, done.astype(bool))


def all_finite(array, rows=1024):
    """No NaN or inf in ``array``, checked by blocks of rows (a memory-mapped Gram matrix is
    not read into memory at once)."""
    return all(np.all(np.isfinite(array[i:i + rows])) for i in range(0, len(array), rows))


class PairIndices:
    """The pairs (I, J) the cross pass computes, in row-major order, made tile by tile from
    their position p in closed form (``pairs[start:stop]``), never all at once: int64 I and J
    of all pairs were 16 bytes per pair (3.2 GB for N = 20,000), more than the float32 Gram
    matrices, and held even when those go to disk.

    A Gram matrix of x1 with itself (``gram``) leaves out the diagonal pairs (i, i): they are
    self pairs, taken from the self pass, where the variances a nonlinearity reads are
    bit-identical to the covariances of the pair (a cross pass on (x_i, x_i) reads the self
    pass's variances against its own, differently rounded covariances, and the relu angle at
    correlation 1 becomes ~1e-8 instead of 0). ``mirror`` (identity (S)) keeps only i < j.
    ``skip``: (SI, SJ), pairs of identical inputs, taken from the self pass too: a slice leaves
    them out (so a tile may hold fewer pairs; the tiles stay where they are)."""

    def __init__(self, n1, n2, gram, mirror, skip=None):
        self.n1, self.n2, self.gram, self.mirror = int(n1), int(n2), gram, mirror
        self.skip = None
        if skip is not None:
            SI, SJ = (np.asarray(v, np.int64) for v in skip)
            if gram:  # the diagonal is not among the pairs: only off-diagonal duplicates count
                SI, SJ = SI[SI != SJ], SJ[SI != SJ]
            if len(SI):
                self.skip = np.unique(SI * self.n2 + SJ)
        if mirror:
            self.count = self.n1 * (self.n1 - 1) // 2
        elif gram:
            self.count = self.n1 * (self.n1 - 1)
        else:
            self.count = self.n1 * self.n2

    def __len__(self):
        return self.count

    def __getitem__(self, span):
        I, J = self._pairs(np.arange(*span.indices(self.count), dtype=np.int64))
        if self.skip is None:
            return I, J
        keep = ~np.isin(I * self.n2 + J, self.skip)
        return I[keep], J[keep]

    def _pairs(self, p):
        if self.mirror:  # row i holds j = i+1 .. n-1 and starts at i (2n - i - 1) / 2
            n = self.n1
            i = np.floor(((2 * n - 1) - np.sqrt((2.0 * n - 1) ** 2 - 8.0 * p)) / 2).astype(np.int64)
            start = lambda r: r * (2 * n - r - 1) // 2  # noqa: E731
            i -= start(i) > p  # the float root may land one row off: correct it exactly
            i += start(i + 1) <= p
            return i, p - start(i) + i + 1
        if self.gram:  # row i holds every j but i
            i, c = np.divmod(p, self.n1 - 1)
            return i, c + (c >= i)
        return np.divmod(p, self.n2)


def pair_indices(n1, n2, gram, mirror):
    """(I, J) of all the pairs the cross pass computes (:class:`PairIndices`), as arrays."""
    return PairIndices(n1, n2, gram, mirror)[:]


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


def merge_estimates(placement):
    """Over several processes: a process records only the estimates its own devices' callbacks
    report (partitioned: each device reports the pairs of its slice of the tile), so every
    process's quadrature and precision estimates are merged (by the rules of ``record_quadrature`` and ``record_precision``) and each process
    warns alike. They travel as JSON text (labels and floats, exact) in an int64 row per
    process, padded to the longest. A collective (every process calls it); one process alone:
    nothing to do."""
    if placement.processes == 1:
        return
    text = json.dumps([sorted(QUADRATURE_ERRORS.items()),
                       [[list(key), values] for key, values in
                        sorted(PRECISION_ESTIMATES.items())]]).encode()
    lengths = placement.gather([len(text)])[:, 0]
    row = np.zeros(int(lengths.max()), np.int64)
    row[:len(text)] = np.frombuffer(text, np.uint8)
    for other, length in zip(placement.gather(row), lengths):
        quadrature, precision = json.loads(bytes(other[:length].astype(np.uint8)))
        for label, (error, scale, n) in quadrature:
            record_quadrature(label, n, error, scale)
        for key, values in precision:
            key = tuple(key)
            mine = PRECISION_ESTIMATES.get(key, values)
            PRECISION_ESTIMATES[key] = [float(np.fmax(a, b)) for a, b in zip(mine, values)]


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


def working_set_cap(tile_working_set, devices):
    """The per-device working set (bytes, XLA's report of one compiled tile) a tile must stay
    under on ``devices``: the least of ``tile_working_set[platform]`` over their platforms, or
    None when no device's platform is listed (or ``tile_working_set`` is None)."""
    caps = [tile_working_set[d.platform] for d in devices
            if tile_working_set and d.platform in tile_working_set]
    return min(caps) if caps else None


def tiled_kernel(propagate, input_shape, output_mirror, bytes_per_pair, output_entries,
                 stats_shapes, max_tile=MAX_TILE, runtime_version=RUNTIME_VERSION,
                 tile_working_set=None):
    """``(kernel_fn, plan_memory)`` of a network whose kernels of input pairs are computed by
    ``propagate``: ``input_shape`` is (*box, C); ``output_mirror`` is identity (S) (a generated
    module's OUTPUT_MIRROR): (layout kind, d, inverse), how the kernel of the pair (x_j, x_i)
    follows from that of (x_i, x_j) (:func:`~kernelc.runtime.layouts.mirror_pairs`), so that a
    Gram matrix of x1 with itself computes i < j only; None: every pair is computed; ``bytes_per_pair`` (float32) is held per pair
    at the widest layer; ``output_entries`` are the entries of the result per pair and
    ``stats_shapes`` the shapes of the variance maps per input (a generated module's
    STATS_SHAPES; the self pass is given zeros of these shapes, which it does not read).
    ``runtime_version``: the version of this package the module was generated for (another one
    is refused).

    ``tile_working_set``: {platform: bytes} or None, the family's declaration (a generated
    module's TILE_WORKING_SET). On devices of a listed platform the tile is the largest size
    ``count·s`` (:meth:`Placement.tile`) whose compiled pass XLA reports at most that many bytes
    per device (``memory_analysis``, before XLA_RUNTIME_MARGIN), or the smallest size when
    none does, on top of the budget and ``max_tile``: a tile whose working set stays near the
    caches runs more pairs per second than a larger one (SO(3): docs/performance.md,
    ``benchmarks/so3_tiles.py``). Unlisted platforms, or None: the budget and ``max_tile``
    alone."""
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

    # (want_ntk, check_precision, fast_maps) -> the pass of the self pairs and the Gram tiles
    # (self_pairs flags which are which), compiled once per shape (and only when used)
    batches = {(want, check, fast): traced(
        check, fast, lambda xa, xb, sa, sb, self_pairs, w=want:
            propagate(xa, xb, sa, sb, w, self_pairs=self_pairs),
        "kernel pass" + " (NNGP+NTK)" * want)
        for want in (True, False) for check in (True, False) for fast in (None, True, False)}

    stats_shapes = tuple(tuple(shape) for shape in stats_shapes)
    stats_entries = sum(int(np.prod(shape)) for shape in stats_shapes) or 1
    input_entries = int(np.prod(input_shape))

    def driver_bytes(n1, n2, n_pairs, itemsize, kernels, results_on_disk):
        """Host bytes the driver holds besides the running tile (``n2`` None: a Gram matrix of
        x1 with itself): the inputs twice (in the working dtype, and the rows hashed to find
        identical inputs), the self pass's kernels and variance maps twice
        (its tiles, then joined) and the Gram matrices unless they go to disk (the pair
        indices are made per tile: :class:`PairIndices`)."""
        inputs = n1 + (n2 or 0)
        nb = n2 or n1
        return (inputs * (2 * input_entries * itemsize + 256)
                + 2 * inputs * (2 * output_entries + stats_entries) * itemsize
                + (0 if results_on_disk else kernels * n1 * nb * output_entries * itemsize))

    def tile_sizes(placement, tile, n1, n2):
        """(tile sizes of x1's and x2's (None) self pairs, of the Gram tiles): the Gram tiles
        hold as many pairs as the larger input set's, so one compiled pass serves both."""
        first = placement.tile(tile, n1)
        second = None if n2 is None else placement.tile(tile, n2)
        return first, second, max(first, second or 0)

    def pass_like(placement, size, dtype):
        """ShapeDtypeStructs of the pass's arguments on ``size`` pairs."""
        x = placement.like((size,) + tuple(input_shape), dtype)
        stats = [placement.like((size,) + shape, dtype) for shape in stats_shapes]
        return x, x, stats, stats, placement.like((size,), bool)

    def tile_bytes(pass_fn, placement, n1, n2, n_pairs, tile, dtype, kernels):
        """Peak bytes of the tiles of size ``tile`` as XLA reports them for the compiled pass
        (compiling it now, so this is also the compilation the run reuses), at each size the
        run uses (:func:`tile_sizes`), times XLA_RUNTIME_MARGIN, times the devices when they
        share the host's memory (CPU devices), plus the host copy of a Gram tile's results; and
        the per-device figure (against a GPU's/TPU's own memory)."""
        itemsize = np.dtype(dtype).itemsize
        first, second, size = tile_sizes(placement, tile, n1, n2)  # size: first or second
        likes = [pass_like(placement, each, dtype) for each in sorted({first, second or first})]
        for args in likes:  # every size lowered (its XLA compilation started) before a report
            pass_fn.outputs(*args)
        per_device = max(pass_fn.memory(*args) or 0 for args in likes)
        per_device = int(per_device * XLA_RUNTIME_MARGIN)
        shared = all(d.platform == "cpu" for d in placement.local)
        # this process's devices only: other processes' slices are in their hosts' memory
        host = per_device * (len(placement.local) if shared else 1) \
            + (size if n_pairs else 0) * kernels * output_entries * itemsize
        return host, per_device, size

    def plan_memory(n1, n2=None, dtype="float32", max_memory=None, symmetric=True,
                    results_on_disk=False, *, get=("nngp", "ntk"), check_precision=True,
                    devices=None, compiled=False, fast_maps=None):
        """The memory plan of a Gram matrix of n1 × n2 inputs (``n2`` None: x1 with itself, only
        i < j computed when ``symmetric``): the budget, the driver's own bytes (inputs, self-pass
        kernels, pair indices, results unless ``results_on_disk``), the tile size in pairs
        (``count·2^k``, :meth:`Placement.tile`) and its bytes, and the predicted peak (driver +
        tile) in ``peak_bytes``. A request that cannot fit raises MemoryBudgetError with the
        estimate, before anything is allocated.

        ``compiled=False`` (``kernelc explain``): the tile's bytes are the generated code's
        model (``bytes_per_pair``: 4 arrays of the widest layer), or what XLA reported for this
        network's passes earlier in this process when that is larger. ``compiled=True``
        (``kernel_fn``): the passes for ``get``/``check_precision``/``fast_maps`` are compiled for the tile
        and XLA's own report of their peak (``memory_analysis``: arguments, outputs,
        temporaries) is used; a tile that does not fit is halved (compiling again) until one
        does. On devices that report their memory (GPU/TPU, ``memory_stats``) the tile must
        also fit each device's free memory. With ``tile_working_set`` (the family's
        {platform: bytes}) the tile's XLA report per device must also stay within the bytes of
        the devices' platform (:func:`working_set_cap`), down to the smallest tile; with
        ``compiled=False`` that cap is applied by the per-pair model only."""
        _, get = check_get(get)
        dtype = check_dtype(dtype)
        placement = Placement(devices)
        pass_fn = batches["ntk" in get, bool(check_precision), fast_maps]
        itemsize = np.dtype(dtype).itemsize
        budget = budget_bytes(max_memory)
        n_pairs = n1 * (n1 - 1) // 2 if (n2 is None and symmetric) else \
            n1 * n2 if n2 is not None else n1 * (n1 - 1)
        kernels = len(get)
        result = 0 if results_on_disk else n1 * (n2 or n1) * output_entries * itemsize * kernels
        fixed = driver_bytes(n1, n2, n_pairs, itemsize, kernels, results_on_disk)
        per_pair = max(bytes_per_pair * itemsize // 4,
                       pass_fn.bytes_per_item.get(str(np.dtype(dtype)), 0))
        device_free = device_free_memory(placement.local)

        def refuse(tile, pairs, measured):
            how = "XLA's report of the compiled tile" if measured else "the model of the network"
            raise MemoryBudgetError(
                f"this Gram matrix needs at least {format_bytes(fixed + tile)}: "
                f"{format_bytes(fixed)} for the driver ({format_bytes(result)} of results, the "
                f"inputs and the diagonal kernels) plus "
                f"{format_bytes(tile)} for the smallest tile ({pairs} pair(s), {how}), more than "
                f"the budget of {format_bytes(budget)}" +
                (f" or the {format_bytes(device_free)} free on a device"
                 if device_free is not None else "") +
                "; raise max_memory or use fewer inputs")

        smallest = placement.count
        if fixed + per_pair * smallest > budget:
            refuse(per_pair * smallest, smallest, False)
        room = (budget - fixed) if device_free is None else min(budget - fixed, device_free)
        cap = working_set_cap(tile_working_set, placement.devices)
        # the first guess: the budget, max_tile and the working set by the per-pair model
        # (XLA's per-item report of an earlier compilation when larger)
        first = min(room // per_pair, max_tile,
                    max_tile if cap is None else placement.count * cap // per_pair)
        tile = placement.tile(first, max(n1, n2 or 0))  # the larger self pass (tile_sizes)
        peak = per_pair * tile
        if compiled:
            with x64_context(dtype):
                while True:
                    host, per_device, items = tile_bytes(pass_fn, placement, n1, n2, n_pairs, tile,
                                                         dtype, kernels)
                    fits = fixed + host <= budget and (device_free is None or
                                                       per_device <= device_free)
                    reported = per_device / XLA_RUNTIME_MARGIN  # XLA's own figure
                    if fits and (cap is None or reported <= cap or tile <= smallest):
                        break
                    if tile <= smallest:
                        refuse(host, tile, True)
                    per_item = max(host / max(items, 1), per_device / max(items, 1))
                    limit = room // max(per_item, 1) if not fits else \
                        placement.count * cap // max(reported / max(items, 1), 1)
                    tile = placement.tile(min(tile - 1, limit), tile - 1)
                peak, per_pair = host, -(-host // max(items, 1))
        return {"pairs": n_pairs, "bytes_per_pair": per_pair, "tile_pairs": tile,
                "tile_bytes": peak, "result_bytes": result, "driver_bytes": fixed,
                "peak_bytes": fixed + peak, "budget": budget, "measured": bool(compiled)}

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
        local x64 context; global JAX flags are not touched). ``max_memory``: bytes or "4GB", a
        limit on what the call allocates: the driver's arrays plus the running tile, by XLA's
        report of the compiled tile (``plan_memory``; docs/performance.md, "Memory"); default:
        half of what the process may still allocate (RAM, MemAvailable, the cgroup's limit); a
        request that cannot fit is refused before the inputs are copied. ``progress``: show a
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
        After the user's ``jax.distributed.initialize`` the default is every device of every
        process (``jax.devices()``): every process must call kernel_fn with the same arguments,
        and each returns the whole Gram matrices (with ``out=``, process 0 writes the folder and
        the others read it back, so it must be shared; docs/performance.md, "Several GPUs,
        several hosts").
        ``out``: a folder; the Gram matrices are written there tile by tile (``nngp.npy``,
        ``ntk.npy``, memory-mapped, not held in memory) and returned opened read-only from it;
        the same call after an interruption computes only the missing tiles
        (:mod:`kernelc.runtime.store`).
        ``fast_maps``: the arc-cosine of relu and leaky_relu (α ≥ 0) maps and the arcsine of
        erf's and gelu's by a minimax polynomial instead of atan2 (2-5x faster per map on
        CPU); proven error of the map at the correlation it reads ≤ 3 roundoffs of the dtype
        relative to sqrt(K(x,x) K(x',x')) for relu (float32: 1.8e-7; float64: 6e-15), ≤ 7.5 for erf and
        gelu (float32: 4.5e-7; float64: 2.4e-14), that correlation itself within 6 (erf: 7)
        roundoffs instead of ~2.5 (docs/math/fast-maps.md). None (default): relu's fast in
        float32 only (erf's and gelu's 7.5 roundoffs are above the ~2 a default takes); True:
        all of them, in float32 and float64; False: atan2 everywhere.
        """
        single, get = check_get(get)
        dtype = check_dtype(dtype)
        if out is not None and not isinstance(out, (str, os.PathLike)):
            raise InputError(f"out must be a folder path (str or os.PathLike), got {out!r}")
        placement = Placement(devices)
        error, agreed, tile = None, np.zeros(32, np.uint8), 0
        try:  # several processes: an error here is shared at the agreement below
            x1 = check_inputs(x1, "x1", input_shape, dtype)
            x2 = None if x2 is None else check_inputs(x2, "x2", input_shape, dtype)
            if fast_maps not in (None, True, False):
                raise InputError(f"fast_maps must be None, True or False, got {fast_maps!r}")
            pass_fn = batches["ntk" in get, bool(check_precision), fast_maps]
            pass_fn.progress = progress  # the plan compiles it
            n1 = x1.shape[0]
            n2 = n1 if x2 is None else x2.shape[0]
            mirror = symmetric and x2 is None and output_mirror is not None
            plan = plan_memory(n1, None if x2 is None else n2, dtype, max_memory, mirror,
                               results_on_disk=out is not None, get=get,
                               check_precision=check_precision, devices=placement.devices,
                               compiled=True, fast_maps=fast_maps)
            tile = plan["tile_pairs"]
            # self pairs: the diagonal of a Gram matrix and every pair of identical inputs; the
            # value comes from the self pass of x1 (of the smaller index in a Gram matrix: stays
            # symmetric)
            x1c = np.asarray(x1, dtype)
            x2c = None if x2 is None else np.asarray(x2, dtype)
            if placement.processes > 1:  # what every process must agree on (below)
                agreed = np.frombuffer(bytes.fromhex(fingerprint(
                    input_shape, x1c, x2c, sorted(get), mirror, bool(check_precision),
                    fast_maps, out is not None)), np.uint8)
        except (InputError, MemoryBudgetError) as exc:
            error = exc
        # several processes: every one runs the same tiles (SPMD), so they must have the same
        # arguments and one tile size (each plans its own host's memory: the smallest wins)
        rows = settle(placement, error, np.concatenate([[tile], agreed]))
        differ = np.flatnonzero(np.any(rows[:, 1:] != rows[0, 1:], axis=1))
        if len(differ):
            raise InputError(
                f"process {int(differ[0])} called kernel_fn with other arguments than process 0 "
                "(x1, x2, get, dtype, symmetric, check_precision, fast_maps or out= differ): "
                "over several processes every process must pass the same ones")
        tile = int(rows[:, 0].min())
        swap = None if not mirror else (lambda values: mirror_pairs(values, output_mirror))
        SI, SJ = same_inputs(x1c, x1c if x2 is None else x2c)
        SK = np.minimum(SI, SJ) if x2 is None else SI
        QUADRATURE_ERRORS.clear()
        PRECISION_ESTIMATES.clear()
        with x64_context(dtype):
            xa = x1c  # gathered on the host per tile (self_pass)
            xb = xa if x2 is None else x2c
            first, second, size = tile_sizes(placement, tile, n1, None if x2 is None else n2)
            k1, t1, s1 = self_pass(pass_fn, xa, stats_shapes, first, progress, placement)
            if x2 is None:
                s2 = s1
            else:
                _, _, s2 = self_pass(pass_fn, xb, stats_shapes, second, progress, placement)
            # pairs of identical inputs come from the self pass: not computed again
            pairs = PairIndices(n1, n2, x2 is None, mirror, (SI, SJ))
            shape = (n1, n2) + tuple(k1.shape[1:])
            n_tiles = -(-len(pairs) // size)
            shapes = {name: shape for name in get}
            if out is not None:
                run = {"runtime_version": RUNTIME_VERSION, "tile_pairs": size,
                       "pairs": len(pairs), "dtype": str(np.dtype(dtype)),
                       # a resumed run evaluates its maps as the tiles already on disk were
                       "fast_maps": {None: "default", True: "all", False: "none"}[fast_maps],
                       "fingerprint": fingerprint(
                           input_shape, x1c, x2c, sorted(get), mirror, k1, t1)}  # k1, t1:
                # identify the network
                store = open_store(placement, out, run, shapes, dtype, n_tiles)
            else:
                store = GramArrays(shapes, dtype, n_tiles)
            if len(pairs):
                cross_pass(pass_fn, xa, xb, s1, s2, pairs, size, progress, placement, store,
                           mirror, swap)
            error = None
            if store.writes:  # it holds the matrices (not a StoreFollower): self pairs, checks
                try:
                    grams = store.arrays
                    for name, diag in (("nngp", k1), ("ntk", t1)):
                        if name not in get:
                            continue
                        gram = grams[name]
                        if len(SI):  # self pairs: from the self pass, also when symmetric=False
                            gram[SI, SJ] = np.asarray(diag)[SK]
                        if not all_finite(gram):
                            raise InputError(
                                f"the {name} Gram matrix has non-finite entries; the inputs or "
                                f"the weight variances may be too large for {dtype}" + (
                                    " (try dtype='float64')" if dtype == "float32" else
                                    " (scale them down)"))
                    grams = store.finished()
                except InputError as exc:
                    error = exc
            settle(placement, error)  # a follower reads the files once process 0 has finished
            if not store.writes:
                grams = store.finished()
        jax.effects_barrier()  # every callback of this call has recorded its estimate
        merge_estimates(placement)
        warn_inexact_quadrature(dtype)
        warn_imprecise(dtype, get)
        if x2 is None:  # a Gram matrix of x1 with itself: PSD is checked (runtime.psd)
            check_grams(grams, dtype)
        return grams[get[0]] if single else grams

    # (want_ntk, check, fast) -> the compiled pass: for inspection
    kernel_fn.compiled_passes = batches
    return kernel_fn, plan_memory
