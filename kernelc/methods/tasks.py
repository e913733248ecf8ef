"""The library behind ``kernelc fit`` and ``kernelc predict``: task data, targets, Gram
matrices, learning curves, tables and plots (the CLI wiring is in :mod:`.commands`).

Data conventions
----------------
* Inputs and targets come from .npz archives. Keys: ``--x``/``--y`` if given; otherwise ``x``/``y``
  when the archive has them, else ``x_train``/``y_train`` (training file) or ``x_test``/``y_test``
  (test file), so one archive with all four (like the shared MNIST file) serves as both.
* uint8 images are scaled to [0, 1]; single-channel (N, *box) stacks get a channel axis;
  ``--crop``/``--pool`` crop, then average-pool every input set alike
  (:class:`~kernelc.methods.data.ImagePreprocessing`, :func:`~kernelc.methods.data.prepare_images`).
* Times ``--t`` are in units of 1/mean diag Θ of the training NTK unless ``--t-unit raw``
  (:data:`TIME_UNITS`).
* Task: integer labels -> classification (centred one-hot targets, accuracy); floating targets ->
  regression (MAE, RMSE). ``--task`` overrides.
* Kernels are computed in float32 by default (``--dtype``); the solves are float64
  (:class:`~kernelc.methods.predict.GradientFlowPredictor`; with ``--solver cg``, or ``auto``
  above ``solvers.DENSE_LIMIT`` training examples, conjugate gradients:
  :class:`~kernelc.methods.predict.ConjugateGradientRegressor`, t = inf only). ``--reg`` is
  relative to the mean diagonal of the training kernel.
"""
from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import InputError, KernelcError, MemoryBudgetError

DEFAULT_REG = 1e-4
DEFAULT_MEMORY = "2GB"
MAX_DEFAULT_TRAIN = 1000


# =========================================================================== data
def _keys(path) -> Dict[str, np.ndarray]:
    from .data import _read_npz
    return _read_npz(path)


def load_split(path, role: str, x_key: Optional[str] = None, y_key: Optional[str] = None,
               need_y: bool = True, choose: Optional[Dict[str, str]] = None
               ) -> Tuple[np.ndarray, Optional[np.ndarray], str, Optional[str]]:
    """``(x, y, x_key_used, y_key_used)`` of the ``role`` ('train' or 'test') split in ``path``.

    Without explicit keys: ``x``/``y`` if present, else ``x_<role>``/``y_<role>``. Raises
    InputError naming the file, the keys looked for and the keys available, and how to choose
    one: ``choose`` (default: the command-line flags ``--x KEY``/``--y KEY``); see
    :func:`kernelc.methods.data.read_split`, the one reader of all commands.
    """
    from .data import CLI_KEYS, read_split
    return read_split(path, role, x_key, y_key, need_y=need_y, choose=choose or CLI_KEYS)


def input_shape(net) -> Tuple[int, ...]:
    spec = net.typed.spec
    return tuple(spec.input.shape) + (spec.input.channels,)


def prepare_inputs(x, net, source: str = "inputs", preprocessing=None) -> np.ndarray:
    """x as float64 (N, *box, C) for the spec of ``net``: cropped and pooled by
    ``preprocessing`` (an :class:`~kernelc.methods.data.ImagePreprocessing`), uint8 scaled to
    [0, 1], a channel axis added to single-channel stacks; a clear InputError, with the
    crop/pool that would fit, when the shape does not fit the spec
    (:func:`kernelc.methods.data.prepare_images`)."""
    from .data import NO_PREPROCESSING, prepare_images
    spec = net.typed.spec
    return prepare_images(x, spec.input, source, preprocessing or NO_PREPROCESSING, spec.name)


def infer_task(y_train, task: Optional[str] = "auto") -> str:
    """'classification' for integer labels, 'regression' otherwise (unless ``task`` says)."""
    if task in ("classification", "regression"):
        return task
    if task not in (None, "auto"):
        raise InputError(f"task must be auto, classification or regression, got {task!r}")
    y = np.asarray(y_train)
    return "classification" if (np.issubdtype(y.dtype, np.integer) or y.dtype == bool) and y.ndim == 1 \
        else "regression"


def make_targets(task: str, y_train, y_tests: Sequence = ()) -> Tuple[np.ndarray, Optional[int]]:
    """Training targets: centred one-hot (classification, k = max label + 1 over all splits)
    or the float targets themselves (regression)."""
    from .metrics import _labels, one_hot
    if task == "classification":
        labs = [_labels("training labels", y_train)] + [_labels("test labels", y) for y in y_tests
                                                         if y is not None]
        k = max(2, max(int(lab.max()) for lab in labs) + 1)
        # one-hot targets and predictions have k columns: a label such as 10**9 (an id, not a
        # class index) asked for 45 GiB and died in numpy
        from .data import _fmt_bytes, data_budget
        need, budget = 8 * k * sum(len(lab) for lab in labs), data_budget()
        if need > budget:
            raise MemoryBudgetError(
                f"the largest label is {k - 1}, so there are {k} classes: one-hot targets and "
                f"predictions of {sum(len(lab) for lab in labs)} examples need {_fmt_bytes(need)}, "
                f"more than the budget of {_fmt_bytes(budget)} (KERNELC_MAX_DATA sets it); class "
                "labels are indices 0..k-1: renumber them (np.unique(y, return_inverse=True)[1]) "
                "or use regression (--task regression, task=\"regression\")")
        return one_hot(labs[0], k), k
    y = np.asarray(y_train)
    if not np.issubdtype(y.dtype, np.number):
        raise InputError(f"regression targets must be numeric, got dtype {y.dtype}")
    if y.ndim not in (1, 2):
        raise InputError(f"regression targets must be (N,) or (N, k), got shape {y.shape}")
    return y.astype(np.float64), None


def score(task: str, pred, y_true) -> Dict[str, float]:
    from .metrics import accuracy, mae, rmse
    if task == "classification":
        return {"accuracy": accuracy(pred, np.asarray(y_true).astype(np.int64))}
    y = np.asarray(y_true, np.float64)
    p = np.asarray(pred, np.float64).reshape(y.shape)
    return {"mae": mae(p, y), "rmse": rmse(p, y)}


def parse_times(text) -> List[float]:
    """'inf' or '0,1,10,inf' -> [floats]; each t >= 0."""
    if isinstance(text, (int, float)):
        text = str(text)
    out = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        try:
            t = float(part)
        except ValueError:
            raise InputError(f"--t must be numbers or 'inf' separated by commas, got {part!r}") from None
        if math.isnan(t) or t < 0:
            raise InputError(f"training time t must be >= 0 (or inf), got {part!r}")
        out.append(t)
    if not out:
        raise InputError("--t is empty")
    return out


def parse_sizes(text, available: int) -> List[int]:
    """'100,200' -> sorted unique ints with 2 <= size <= available. Default (None): a ladder of
    four sizes doubling up to min(available, MAX_DEFAULT_TRAIN)."""
    if available < 2:
        raise InputError(f"the training set has {available} example(s); at least 2 are needed")
    if text is None or (isinstance(text, str) and not text.strip()):
        top = min(available, MAX_DEFAULT_TRAIN)
        return sorted({max(2, top >> k) for k in (3, 2, 1, 0)})
    if isinstance(text, str):
        try:
            sizes = [int(s) for s in text.replace(" ", "").split(",") if s]
        except ValueError:
            raise InputError(f"--sizes must be integers separated by commas, got {text!r}") from None
    else:
        sizes = [int(s) for s in text]
    if not sizes:
        raise InputError("--sizes is empty")
    for s in sizes:
        if s < 2:
            raise InputError(f"training-set size {s} is too small: kernel regression needs at least 2 "
                             "training examples")
        if s > available:
            raise InputError(f"training-set size {s} is larger than the {available} training examples "
                             "available")
    return sorted(set(sizes))


#: How a training time t is measured. "mean-diag" (the default of every command and of
#: :func:`learning_curve`, ``fit`` and ``check_augmentation``): t is in units of 1/mean diag Θ of
#: the training NTK, i.e. the gradient-flow time is t / mean(diag Θ), so a given t means the same
#: progress whatever the kernel's scale (W_std, depth). "raw": t is the time of gradient flow on
#: L = ½ Σᵢ ‖f(xᵢ) − yᵢ‖² with learning rate 1, as :class:`GradientFlowPredictor` takes it.
TIME_UNITS = ("mean-diag", "raw")


def time_scale(ntk_train_train, time_unit: str = "mean-diag") -> float:
    """Gradient-flow time per unit of t: ``1 / mean(diag Θ)`` for ``time_unit="mean-diag"``,
    1 for ``"raw"`` (see :data:`TIME_UNITS`)."""
    if time_unit == "raw":
        return 1.0
    if time_unit != "mean-diag":
        raise InputError(f"time_unit must be one of {', '.join(TIME_UNITS)}, got {time_unit!r}")
    # the diagonal alone: a Gram matrix on disk (memory-mapped) is not read whole
    mean_diag = float(np.mean(np.asarray(np.diagonal(ntk_train_train), np.float64)))
    if not mean_diag > 0:
        raise InputError(f"the training NTK has mean diagonal {mean_diag:g}, so time in units of "
                         "1/mean diag Θ is undefined; use raw time (--t-unit raw)")
    return 1.0 / mean_diag


def _fmt_t(t: float) -> str:
    return "inf" if math.isinf(t) else f"{t:g}"


# =========================================================================== kernels
def compute_grams(net, x_train, x_tests: Dict[str, np.ndarray], *, dtype: str = "float32",
                  max_memory=DEFAULT_MEMORY, progress=None, fast_maps=None, out=None
                  ) -> Tuple[Dict[str, Dict[str, np.ndarray]], float]:
    """NNGP and NTK Gram matrices: ``{"train": {"nngp": (n, n), "ntk": ...}, name: {... (m, n)}}``
    for each test set in ``x_tests`` (all test sets go through one cross call), and the seconds
    it took. The train×train block uses the symmetric path (pairs i < j only). ``fast_maps``:
    kernel_fn's (None: the polynomial arc-cosine in float32 only). ``out``: a folder; the
    Gram matrices are written to ``out/train`` and ``out/test`` tile by tile and the training
    ones returned memory-mapped from there (kernel_fn's ``out``: resumable after an
    interruption), for a solver that reads them by blocks (:class:`ConjugateGradientRegressor`)."""
    import os
    t0 = time.perf_counter()
    where = {"train": None, "test": None} if out is None else \
        {part: os.path.join(os.fspath(out), part) for part in ("train", "test")}
    out = {"train": net.kernel_fn(x_train, None, ("nngp", "ntk"), dtype=dtype,
                                  max_memory=max_memory, progress=progress,
                                  fast_maps=fast_maps, out=where["train"])}
    names = [k for k, v in x_tests.items() if v is not None and len(v)]
    if names:
        stacked = np.concatenate([x_tests[k] for k in names])
        cross = net.kernel_fn(stacked, x_train, ("nngp", "ntk"), dtype=dtype,
                              max_memory=max_memory, progress=progress, symmetric=False,
                              fast_maps=fast_maps, out=where["test"])
        start = 0
        for k in names:
            m = len(x_tests[k])
            out[k] = {g: np.asarray(v[start:start + m]) for g, v in cross.items()}
            start += m
    return out, time.perf_counter() - t0


def learning_curve(grams, task: str, y_train, y_tests: Dict[str, np.ndarray], sizes: Sequence[int],
                   times: Sequence[float], reg: float = DEFAULT_REG, spec: str = "",
                   n_classes: Optional[int] = None, time_unit: str = "mean-diag",
                   solver: Optional[dict] = None) -> List[dict]:
    """Metrics per training-set size (nested prefixes of the training set) for the NTK (gradient
    flow at each t) and the NNGP (posterior mean). One flat record per (test set, kernel, t, size).
    ``times`` are in ``time_unit`` (:data:`TIME_UNITS`): by default units of 1/mean diag Θ of each
    size's training kernel; the records keep t as given. ``solver``: {"solver": "auto", "dense"
    or "cg", and for cg "tol", "rank", "max_iter"} (default dense); each size takes
    :func:`~kernelc.methods.predict.choose_solver`'s choice (cg: t = inf only).
    """
    from .predict import ConjugateGradientRegressor, GradientFlowPredictor, choose_solver
    solver = solver or {"solver": "dense"}
    targets, k = make_targets(task, y_train, list(y_tests.values()))
    if task == "classification" and n_classes is not None and n_classes != k:
        from .metrics import one_hot
        targets = one_hot(np.asarray(y_train).astype(np.int64), n_classes)
    records = []
    for n in sizes:
        kt, kk = grams["train"]["ntk"][:n, :n], grams["train"]["nngp"][:n, :n]
        if choose_solver(solver["solver"], n) == "cg":
            finite = [t for t in times if math.isfinite(t)]
            if finite:
                raise InputError(f"the conjugate-gradient solver (training size {n}) gives "
                                 f"kernel regression (t = inf) only, not t = {_fmt_t(finite[0])}")
            pred = ConjugateGradientRegressor(kt, targets[:n], nngp_train_train=kk, diag_reg=reg,
                                              tol=solver.get("tol", 1e-6),
                                              rank=solver.get("rank", 200),
                                              max_iter=solver.get("max_iter"))
            ntk_mean = lambda k_test: [pred.mean(k_test)] * len(times)  # noqa: E731 - t = inf
            nngp_mean = lambda k_test: pred.nngp_posterior(k_test).mean  # noqa: E731
        else:
            pred = GradientFlowPredictor(solve_dtype(kt, reg), targets[:n],
                                         nngp_train_train=solve_dtype(kk, reg), diag_reg=reg)
            scale = time_scale(kt, time_unit)
            ntk_mean = lambda k_test: pred.mean(  # noqa: E731
                k_test, np.asarray(times, dtype=np.float64) * scale)
            # the posterior mean does not depend on the test variances: ones stand for them
            nngp_mean = lambda k_test: pred.nngp_posterior(  # noqa: E731
                k_test, np.ones(len(k_test))).mean
        for name, y in y_tests.items():
            g = grams[name]
            f_ntk = ntk_mean(g["ntk"][:, :n])
            for t, f in zip(times, f_ntk):
                records.append(dict(spec=spec, test_set=name, kernel="ntk", t=_fmt_t(t), size=int(n),
                                    **score(task, f, y)))
            records.append(dict(spec=spec, test_set=name, kernel="nngp", t="posterior", size=int(n),
                                **score(task, nngp_mean(g["nngp"][:, :n]), y)))
    return records


def solve_dtype(k, reg: float) -> np.ndarray:
    """The training kernel as the solver should see it.

    With a ridge (reg > 0) the kernel goes to the solver as float64: the ridge, reg × mean
    diagonal (1e-4 by default), dominates the ~1e-7 relative round-off of float32 kernels, and
    the solver's eigen-cutoff is then the float64 one (n·eps64·λ_max). Without a ridge the
    kernel keeps its dtype, so a float32 kernel gets the float32 cutoff n·eps32·λ_max, which
    guards against its round-off. (Measured on MNIST 7×7, p4 NTK, n = 200: the float32 cutoff
    drops the informative directions of these nearly-constant GAP kernels, λ_min/λ_max ≈ 1e-6,
    and accuracy falls from 0.86 — the float64-kernel value, reproduced by float32 kernels
    solved this way — to 0.62.)"""
    return np.asarray(k, np.float64) if reg > 0 else k


def metric_names(task: str) -> List[str]:
    return ["accuracy"] if task == "classification" else ["mae", "rmse"]


def print_table(records: List[dict], task: str, file=None) -> None:
    """One block per (spec, test set): rows = sizes, columns = kernel/t and metric."""
    file = file or sys.stdout
    metrics = metric_names(task)
    keyed: Dict[tuple, Dict[tuple, dict]] = {}
    for r in records:
        keyed.setdefault((r["spec"], r["test_set"]), {})[(r["size"], r["kernel"], r["t"])] = r
    for (spec, test), rows in keyed.items():
        cols = sorted({(k, t) for (_, k, t) in rows}, key=lambda c: (c[0] != "ntk", c[1]))
        sizes = sorted({s for (s, _, _) in rows})
        head = [f"{k.upper()} {('t=' + t) if k == 'ntk' else 'mean'} {m}" for k, t in cols for m in metrics]
        print(f"{spec} — test set '{test}'", file=file)
        print("  " + f"{'n_train':>8s}  " + "  ".join(f"{h:>20s}" for h in head), file=file)
        for s in sizes:
            vals = [rows[(s, k, t)][m] for k, t in cols for m in metrics]
            print("  " + f"{s:8d}  " + "  ".join(f"{v:20.4f}" for v in vals), file=file)


def plot_curves(records: List[dict], path, task: str, title: str = "") -> Path:
    """Learning curves: metric vs training-set size (log scale); colour = spec, line style =
    kernel/t, marker = test set. Written atomically; returns the file name (``.png`` is
    appended to a name without an extension)."""
    try:  # the object API on an Agg canvas: pyplot and the global backend are left alone
        import matplotlib
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:  # pragma: no cover - matplotlib is an optional dependency
        raise KernelcError("--plot needs matplotlib (pip install matplotlib)") from None
    metric = metric_names(task)[0]
    specs = list(dict.fromkeys(r["spec"] for r in records))
    tests = list(dict.fromkeys(r["test_set"] for r in records))
    curves = list(dict.fromkeys((r["kernel"], r["t"]) for r in records))
    colors = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    styles = ["-", "--", ":", "-."]
    markers = ["o", "s", "^", "D", "v"]
    fig = Figure(figsize=(6.4, 4.4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for si, spec in enumerate(specs):
        for ci, (kern, t) in enumerate(curves):
            for ti, test in enumerate(tests):
                pts = sorted((r["size"], r[metric]) for r in records
                             if (r["spec"], r["test_set"], r["kernel"], r["t"]) == (spec, test, kern, t))
                if not pts:
                    continue
                lab = spec
                if len(curves) > 1:
                    several_t = sum(c[0] == "ntk" for c in curves) > 1
                    lab += f" {kern.upper()}" + (f" t={t}" if kern == "ntk" and several_t else "")
                if len(tests) > 1:
                    lab += f" ({test})"
                ax.plot(*zip(*pts), color=colors[si % len(colors)], ls=styles[ci % len(styles)],
                        marker=markers[ti % len(markers)], label=lab)
    ax.set_xscale("log", base=2)
    sizes = sorted({r["size"] for r in records})
    ax.set_xticks(sizes)
    ax.set_xticklabels([str(s) for s in sizes])
    ax.minorticks_off()
    ax.set_xlabel("training-set size")
    ax.set_ylabel({"accuracy": "test accuracy", "mae": "test MAE"}[metric])
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    from .data import save_figure
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return save_figure(fig, path, dpi=120)
