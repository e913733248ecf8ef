"""Monte Carlo verification: finite networks built from the spec vs the analytic kernels.

For each width n, ``samples`` networks with every hidden layer n channels wide are drawn at
random (:mod:`kernelc.network`); their empirical kernels are compared with the exact
infinite-width Gram matrices (``compiled.kernel_fn(x, dtype="float64")``):

* NNGP: the Monte Carlo mean over networks of (1/n_out) f(x)·f(x')ᵀ (output covariance);
* NNGP readout-avg: the same with the readout layer's weights averaged out analytically,
  σ_w²/n h(x)·h(x')ᵀ + σ_b² for the features h entering a dense output layer (a
  Rao–Blackwellised estimate of the same expectation);
* NNGP (one net): the error of a single network's readout-averaged NNGP, averaged over networks;
* NTK:  the Monte Carlo mean over networks of the empirical NTK (Jacobian contraction);
* NTK (one net): the error of a single network's NTK, averaged over networks.

The error measure is the paper's (Fig. 1): the relative error |K̂_ij − K_ij| / |K_ij| averaged
over the Gram entries (i ≤ j for a symmetric Gram matrix; denominators are floored at 1e-3 of
the largest |K_ij| so a vanishing entry cannot dominate). Intervals are bootstrap 95%
percentile intervals over the networks. The slope of log error against log width is fitted by
least squares: a single network's NTK (and readout-averaged NNGP) deviates like n^(-1/2); the
Monte Carlo means deviate by a bias O(1/n) plus noise O(1/sqrt(n·samples)) for the NTK and the
readout-averaged NNGP, while the raw NNGP estimate's noise does not fall with width (one output
covariance is a product of two O(1) Gaussians), so its error levels off at about
sqrt(2 / (samples·n_out)).
"""
from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .errors import InputError, KernelcError
from .families import family_of

FLOOR = 1e-3
BOOTSTRAP = 1000


@dataclass
class WidthResult:
    """Errors at one width (relative errors averaged over Gram entries; CIs are 95%)."""

    width: int
    samples: int
    nngp_error: float
    nngp_ci: Tuple[float, float]
    nngp_readout_error: Optional[float]
    nngp_readout_ci: Optional[Tuple[float, float]]
    nngp_single_error: Optional[float]       # one network's readout-averaged NNGP
    nngp_single_ci: Optional[Tuple[float, float]]
    ntk_error: Optional[float]
    ntk_ci: Optional[Tuple[float, float]]
    ntk_single_error: Optional[float]
    ntk_single_ci: Optional[Tuple[float, float]]
    nngp_max_z: float          # max over entries |mean − exact| / standard error
    ntk_max_z: Optional[float]
    seconds: float


@dataclass
class VerifyReport:
    spec: str
    group: str
    group_order: str  # the family's words for it: "|H|=4", "continuous"
    n_inputs: int
    samples: int
    seed: int
    dtype: str
    results: List[WidthResult]
    slopes: Dict[str, Optional[float]]
    analytic: Dict[str, list]
    notes: List[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def widths(self) -> List[int]:
        return [r.width for r in self.results]

    def table(self) -> str:
        """A plain-text table: one row per width, then the fitted slopes."""
        head = (f"kernelc verify: {self.spec} ({self.group}, {self.group_order}), "
                f"{self.n_inputs} inputs, {self.samples} networks per width, {self.dtype} "
                f"networks vs float64 kernels, seed {self.seed}")
        names = [("NNGP", "nngp_error", "nngp_ci"),
                 ("NNGP readout-avg", "nngp_readout_error", "nngp_readout_ci"),
                 ("NNGP 1-net", "nngp_single_error", "nngp_single_ci"),
                 ("NTK", "ntk_error", "ntk_ci"), ("NTK 1-net", "ntk_single_error", "ntk_single_ci")]
        cols = (f"{'width':>6}  " + " ".join(f"{n + ' [95% CI]':<25}" for n, _, _ in names)
                + f" {'max|z| K/Θ':>11} {'time':>7}")
        lines = [head, "", cols, "-" * len(cols)]

        def cell(v, ci):
            if v is None:
                return f"{'-':<25}"
            return f"{v:<7.4f} [{ci[0]:.4f}, {ci[1]:.4f}]".ljust(25)
        for r in self.results:
            z = f"{r.nngp_max_z:.1f}/" + ("-" if r.ntk_max_z is None else f"{r.ntk_max_z:.1f}")
            lines.append(f"{r.width:>6}  " + " ".join(cell(getattr(r, a), getattr(r, b))
                                                       for _, a, b in names)
                         + f" {z:>11} {r.seconds:6.1f}s")

        def slope(k):
            v = self.slopes.get(k)
            return "n/a" if v is None else f"{v:+.3f}"
        lines += ["", f"log-log slope of error vs width: NNGP {slope('nngp')}, NNGP readout-avg "
                      f"{slope('nngp_readout')}, NNGP 1-net {slope('nngp_single')}, NTK "
                      f"{slope('ntk')}, NTK 1-net {slope('ntk_single')} (theory: −1/2 for one "
                      "network; MC means: noise ∝ n^-1/2 plus bias ∝ 1/n)"]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["widths"] = self.widths
        return out

    def to_json(self, path) -> Path:
        """Write the report as JSON (atomically); returns ``path``."""
        from .methods.data import write_text
        return write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def from_dict(cls, data: dict) -> "VerifyReport":
        """The inverse of :meth:`to_dict` (e.g. to re-plot a saved ``--json`` report)."""
        data = dict(data)
        data.pop("widths", None)
        rows = []
        for r in data.pop("results"):
            r = {k: tuple(v) if isinstance(v, list) else v for k, v in r.items()}
            rows.append(WidthResult(**r))
        return cls(results=rows, **data)

    @classmethod
    def from_json(cls, path) -> "VerifyReport":
        return cls.from_dict(json.loads(Path(path).read_text()))

    def plot(self, path, title: Optional[str] = None) -> Path:
        """Log-log plot of the errors against width (bands: 95% bootstrap intervals) with a
        width^(-1/2) reference line, written to ``path`` (PNG unless its extension names another
        format; ``.png`` is appended to a name without one). Returns the file name written."""
        return plot_reports([self], path, [title] if title else None)


def plot_reports(reports: Sequence[VerifyReport], path, titles=None) -> Path:
    """One panel per report (see :meth:`VerifyReport.plot`). Needs matplotlib; uses its Agg
    canvas directly, so no global pyplot state or backend is touched. Written atomically;
    returns the file name written."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise KernelcError("plotting needs matplotlib: pip install matplotlib "
                           "(or pip install 'kernelc[plot]')") from None
    fig = Figure(figsize=(7.5 * len(reports), 5.2))
    FigureCanvasAgg(fig)
    for i, rep in enumerate(reports):
        ax = fig.add_subplot(1, len(reports), i + 1)
        w = np.array(rep.widths, dtype=float)
        series = [("NNGP (MC mean)", "nngp_error", "nngp_ci", "tab:blue", "o"),
                  ("NNGP readout-avg (MC mean)", "nngp_readout_error", "nngp_readout_ci",
                   "tab:purple", "D"),
                  ("NNGP readout-avg (one network)", "nngp_single_error", "nngp_single_ci",
                   "tab:orange", "v"),
                  ("NTK (MC mean)", "ntk_error", "ntk_ci", "tab:red", "s"),
                  ("NTK (one network)", "ntk_single_error", "ntk_single_ci", "tab:green", "^")]
        for label, key, ci_key, color, marker in series:
            vals = [getattr(r, key) for r in rep.results]
            if any(v is None for v in vals):
                continue
            ci = np.array([getattr(r, ci_key) for r in rep.results])
            slope = rep.slopes.get(key[:-len("_error")])
            text = f"{label}, slope {slope:+.2f}" if slope is not None else label
            ax.plot(w, vals, marker=marker, color=color, label=text)
            ax.fill_between(w, ci[:, 0], ci[:, 1], color=color, alpha=0.2, linewidth=0)
        single = [r.ntk_single_error for r in rep.results]
        if all(v is not None for v in single):
            ref = single[0] * (w / w[0]) ** -0.5
            ax.plot(w, ref, "k--", linewidth=1, label="∝ width$^{-1/2}$")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("width (channels of every hidden layer)")
        ax.set_ylabel("mean relative error")
        ax.set_title(titles[i] if titles and titles[i] else
                     f"{rep.spec} ({rep.group}), {rep.samples} networks/width")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8, loc="lower left", framealpha=0.85)
    fig.tight_layout()
    from .methods.data import save_figure
    return save_figure(fig, path, dpi=110)


# -- statistics ---------------------------------------------------------------------------------
def _entries(k: np.ndarray, symmetric: bool) -> np.ndarray:
    """Gram entries used by the error: (..., E), upper triangle when symmetric."""
    if symmetric:
        i, j = np.triu_indices(k.shape[-1])
        return k[..., i, j]
    return k.reshape(k.shape[:-2] + (-1,))


def relative_error(est: np.ndarray, exact: np.ndarray) -> np.ndarray:
    """Mean over the last axis of |est − exact| / max(|exact|, 1e-3·max|exact|)."""
    denom = np.maximum(np.abs(exact), FLOOR * np.max(np.abs(exact)))
    return np.mean(np.abs(est - exact) / denom, axis=-1)


def _bootstrap_mean_error(per_sample: np.ndarray, exact: np.ndarray, rng, n_boot: int):
    """(error of the mean, 95% CI) with networks resampled (multinomial counts: memory B×E)."""
    s = per_sample.shape[0]
    err = float(relative_error(per_sample.mean(axis=0), exact))
    counts = rng.multinomial(s, np.full(s, 1.0 / s), size=n_boot).astype(np.float64)
    boot = relative_error(counts @ per_sample / s, exact)
    return err, (float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5)))


def _bootstrap_mean(values: np.ndarray, rng, n_boot: int):
    s = values.shape[0]
    counts = rng.multinomial(s, np.full(s, 1.0 / s), size=n_boot).astype(np.float64)
    boot = counts @ values / s
    return float(values.mean()), (float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5)))


def _max_z(per_sample: np.ndarray, exact: np.ndarray) -> float:
    s = per_sample.shape[0]
    se = per_sample.std(axis=0, ddof=1) / math.sqrt(s) if s > 1 else np.full(exact.shape, np.inf)
    z = np.abs(per_sample.mean(axis=0) - exact) / np.maximum(se, 1e-300)
    return float(np.max(z))


def fit_slope(widths, errors) -> Optional[float]:
    """Least-squares slope of log(error) against log(width); None with < 2 usable points."""
    w = np.asarray(widths, dtype=float)
    e = np.asarray([np.nan if v is None else v for v in errors], dtype=float)
    ok = np.isfinite(e) & (e > 0)
    if ok.sum() < 2:
        return None
    return float(np.polyfit(np.log(w[ok]), np.log(e[ok]), 1)[0])


# -- the check ----------------------------------------------------------------------------------
def verify(compiled, x, widths: Sequence[int] = (8, 32, 128, 512), samples: int = 64,
           seed: int = 0, progress: bool = True, *, dtype: str = "float32",
           method: str = "auto", bootstrap: int = BOOTSTRAP) -> VerifyReport:
    """Compare Monte Carlo kernels of finite networks with the analytic ones, per width.

    ``compiled``: a CompiledKernel (or a spec path/text, compiled here); ``x``: (N, *box, C)
    inputs; ``widths``: hidden widths to test; ``samples``: networks per width (networks are
    ``fold_in(key(seed), s)``, so a width's first networks do not depend on ``samples``);
    ``dtype``: of the networks ("float32" or "float64"); ``method``: empirical NTK method
    (see :func:`kernelc.network.empirical_ntk`). Progress goes to stderr. Returns a
    :class:`VerifyReport` (``.table()``, ``.plot(path)``, ``.to_json(path)``).
    """
    from . import network as kn
    from .api import CompiledKernel, compile as kc_compile
    start = time.perf_counter()
    if not isinstance(compiled, CompiledKernel):
        compiled = kc_compile(compiled)
    widths = [int(w) for w in widths]
    if not widths or any(w < 1 for w in widths):
        raise InputError(f"widths must be positive integers, got {widths!r}")
    if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or samples < 2:
        raise InputError(f"samples must be an integer ≥ 2 (errors need a spread), got {samples!r}")
    typed = compiled.typed
    out_t = typed.output_type
    if out_t.domain != "vector":
        raise KernelcError(f"verify compares Gram matrices of vector outputs, but "
                           f"{typed.spec.name} ends with a signal on {out_t}; end it with "
                           "group_pool (or flatten) and dense")
    notes: List[str] = []
    with_ntk = typed.spec.parameterization == "ntk"
    if not with_ntk:
        notes.append("standard parameterisation: its NTK depends on the spec's finite widths, "
                     "so only the NNGP is compared across widths")
    get = ("nngp", "ntk") if with_ntk else ("nngp",)
    x = np.asarray(x)
    net = kn.network(typed)
    mc_get = get + (("nngp_readout",) if net.readout_node is not None else ())
    if progress:
        sys.stderr.write(f"kernelc verify: analytic kernels of {x.shape[0]} inputs (float64)\n")
    exact = compiled.kernel_fn(x, dtype="float64", get=get)
    exact_e = {k: _entries(np.asarray(v), True) for k, v in exact.items()}
    rng = np.random.default_rng(seed)
    results: List[WidthResult] = []
    for w in widths:
        t0 = time.perf_counter()
        cb = kn.stderr_progress(f"kernelc verify: width {w}") if progress else None
        mc = kn.monte_carlo(net.init, net.apply, x, width=w, samples=samples, seed=seed,
                            get=mc_get, dtype=dtype, method=method, progress=cb,
                            readout_fn=net.readout_nngp)
        per = {k: _entries(v, True) for k, v in mc.items()}
        nngp_err, nngp_ci = _bootstrap_mean_error(per["nngp"], exact_e["nngp"], rng, bootstrap)
        ro_err = ro_ci = ro_single = ro_single_ci = None
        if "nngp_readout" in per:
            ro_err, ro_ci = _bootstrap_mean_error(per["nngp_readout"], exact_e["nngp"], rng,
                                                  bootstrap)
            ro_single, ro_single_ci = _bootstrap_mean(
                relative_error(per["nngp_readout"], exact_e["nngp"]), rng, bootstrap)
        ntk_err = ntk_ci = single = single_ci = ntk_z = None
        if with_ntk:
            ntk_err, ntk_ci = _bootstrap_mean_error(per["ntk"], exact_e["ntk"], rng, bootstrap)
            single, single_ci = _bootstrap_mean(relative_error(per["ntk"], exact_e["ntk"]), rng,
                                                bootstrap)
            ntk_z = _max_z(per["ntk"], exact_e["ntk"])
        results.append(WidthResult(w, samples, nngp_err, nngp_ci, ro_err, ro_ci, ro_single,
                                   ro_single_ci, ntk_err, ntk_ci, single,
                                   single_ci, _max_z(per["nngp"], exact_e["nngp"]), ntk_z,
                                   time.perf_counter() - t0))
        if progress:
            r = results[-1]
            sys.stderr.write(f"kernelc verify: width {w}: NNGP error {r.nngp_error:.4f}"
                             + ("" if ro_err is None else f" (readout-avg {ro_err:.4f})")
                             + ("" if ntk_err is None else
                                f", NTK error {ntk_err:.4f}, one-net NTK error {single:.4f}")
                             + f" ({r.seconds:.1f}s)\n")
    slopes = {"nngp": fit_slope(widths, [r.nngp_error for r in results]),
              "nngp_readout": fit_slope(widths, [r.nngp_readout_error for r in results]),
              "nngp_single": fit_slope(widths, [r.nngp_single_error for r in results]),
              "ntk": fit_slope(widths, [r.ntk_error for r in results]),
              "ntk_single": fit_slope(widths, [r.ntk_single_error for r in results])}
    group = typed.group
    return VerifyReport(typed.spec.name, group.name, family_of(group).order_text(group),
                        int(x.shape[0]), samples, seed,
                        str(np.dtype(dtype)), results, slopes,
                        {k: np.asarray(v).tolist() for k, v in exact.items()}, notes,
                        time.perf_counter() - start)


# -- command line -------------------------------------------------------------------------------
def parse_widths(text) -> List[int]:
    if isinstance(text, (list, tuple)):
        return [int(w) for w in text]
    try:
        widths = [int(part) for part in str(text).replace(" ", "").split(",") if part]
    except ValueError:
        raise InputError(f"--widths takes comma-separated integers like 8,32,128, got {text!r}") \
            from None
    if not widths or any(w < 1 for w in widths):
        raise InputError(f"--widths takes positive integers, got {text!r}")
    return widths


def _load_inputs(args, compiled) -> np.ndarray:
    """The inputs of ``kernelc verify``: --data read and prepared as every command reads data
    (--x, --limit, --crop, --pool; :func:`kernelc.methods.data.read_split` and
    :func:`~kernelc.methods.data.prepare_images`), or --random N standard-normal inputs."""
    from .methods.commands import image_preprocessing, refuse_preprocessing_of_random
    preprocessing = image_preprocessing(args)
    limit = getattr(args, "limit", None)
    if limit is not None and limit < 1:
        raise InputError(f"--limit must be a positive number of inputs, got {limit}")
    data = getattr(args, "data", None)
    spec = compiled.typed.spec
    if data:
        from .methods.data import CLI_KEYS, prepare_images, read_split
        x, _, key, _ = read_split(data, None, getattr(args, "x", None), None, choose=CLI_KEYS)
        return prepare_images(x[:limit], spec.input, f"inputs {data}:'{key}'", preprocessing,
                              spec.name)
    if getattr(args, "x", None) is not None:
        raise InputError("--x chooses an array of --data; --random draws its inputs")
    refuse_preprocessing_of_random(args, preprocessing)
    n = getattr(args, "random", None)
    if n is not None and n < 1:
        raise InputError(f"--random needs at least one input, got {n}")
    n = n or 2
    n = n if limit is None else min(n, limit)
    shape = tuple(spec.input.shape) + (spec.input.channels,)
    return np.random.default_rng(getattr(args, "seed", 0) or 0).normal(size=(int(n),) + shape)


def verify_command(args) -> int:
    """``kernelc verify SPEC [--widths 8,32] [--samples 64] [--data x.npz | --random N]
    [--seed 0] [--plot out.png] [--json out.json]``: prints the table, returns 0."""
    from .api import compile as kc_compile
    from .errors import OutputError
    from .methods.data import output_path
    if getattr(args, "seed", 0) is not None and getattr(args, "seed", 0) < 0:
        # numpy's default_rng refused it: an internal error
        raise InputError(f"--seed must be ≥ 0, got {args.seed}")
    inputs = [args.spec, getattr(args, "data", None)]
    plot, json_out = getattr(args, "plot", None), getattr(args, "json", None)
    plot = None if plot is None else output_path(plot, "--plot", image=True, inputs=inputs)
    json_out = None if json_out is None else output_path(json_out, "--json", inputs=inputs)
    if plot and json_out and plot.resolve() == json_out.resolve():
        raise OutputError(f"--json and --plot name the same file {plot}; give two names")
    compiled = kc_compile(args.spec)
    x = _load_inputs(args, compiled)
    report = verify(compiled, x, widths=parse_widths(getattr(args, "widths", "8,32,128,512")),
                    samples=int(getattr(args, "samples", 64)),
                    seed=int(getattr(args, "seed", 0) or 0),
                    progress=not getattr(args, "quiet", False))
    print(report.table())
    if plot:
        print(f"plot written to {report.plot(plot)}")
    if json_out:
        print(f"report written to {report.to_json(json_out)}")
    return 0


def add_verify_parser(subparsers):
    """Register ``verify`` on an argparse subparsers object (sets ``func=verify_command``)."""
    p = subparsers.add_parser(
        "verify", help="Monte Carlo check: finite networks from the spec vs the analytic kernels",
        description="Draw random finite-width networks built from the spec, average their "
                    "empirical NNGP/NTK and compare with the exact kernels, width by width.")
    # a Path, as every command's spec: a str that names no file was parsed as spec text
    # ("verify missing": "<spec>:1:1: error: the spec declares no group")
    p.add_argument("spec", type=Path, help="the .kc spec file")
    p.add_argument("--widths", default="8,32,128,512",
                   help="comma-separated hidden widths (default 8,32,128,512)")
    p.add_argument("--samples", type=int, default=64, help="networks per width (default 64)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--data", metavar="FILE.npz",
                     help="inputs from an .npz file (shape (N, *box[, C]); uint8 scaled to [0, 1])")
    src.add_argument("--random", type=int, default=None, metavar="N",
                     help="N random standard-normal inputs (default 2)")
    p.add_argument("--x", default=None, metavar="KEY",
                   help="array key of the inputs in --data (default: x)")
    p.add_argument("--limit", type=int, metavar="N", help="use only the first N inputs")
    from .methods.commands import add_image_options
    add_image_options(p)
    p.add_argument("--seed", type=int, default=0, help="seed of networks and random inputs")
    p.add_argument("--plot", help="write a log-log PNG of error vs width here")
    p.add_argument("--json", help="write the report as JSON here")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(func=verify_command)
    return p


__all__ = ["verify", "VerifyReport", "WidthResult", "verify_command", "add_verify_parser",
           "plot_reports", "relative_error", "fit_slope", "parse_widths"]
