"""The ``predict``, ``fit`` and ``augment`` subcommands.

``kernelc.cli`` calls :func:`add_fit_parser`, :func:`add_predict_parser` and
:func:`add_augment_parser` with its ``COMMANDS`` table. Each ``run_*`` returns an exit code and
raises :class:`KernelcError` (printed by the CLI, status 2) for user errors. The reusable pieces
(:func:`load_split`, :func:`compute_grams`, :func:`learning_curve`, ...) live in :mod:`.tasks`.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Dict, Sequence

import numpy as np

from ..errors import InputError, OutputError
from .data import ImagePreprocessing, output_path, save_npz, write_text
from .tasks import (  # noqa: F401 - re-exported for scripts that import them from here
    load_split,
    input_shape,
    prepare_inputs,
    infer_task,
    make_targets,
    score,
    parse_times,
    parse_sizes,
    time_scale,
    TIME_UNITS,
    _fmt_t,
    compute_grams,
    learning_curve,
    solve_dtype,
    print_table,
    plot_curves,
    _keys,
    DEFAULT_REG,
    DEFAULT_MEMORY,
    MAX_DEFAULT_TRAIN,
)


# =========================================================================== shared CLI bits
#: --t and --t-unit, as every command that trains (predict, fit, augment --check) documents them
T_UNIT_HELP = ("units of --t: mean-diag (default) measures t in units of 1/mean diag Θ of the "
               "training NTK (gradient-flow time t / mean diag Θ; the same t means the same "
               "progress for any kernel scale); raw: the time of gradient flow on "
               "½ Σ‖f(xᵢ) − yᵢ‖² with learning rate 1")


def add_image_options(p):
    """--crop and --pool: the image preprocessing of every command that reads data (kernel, fit,
    predict, verify, augment), applied by :func:`image_preprocessing` in one order."""
    p.add_argument("--crop", metavar="SIZE|A:B,C:D",
                   help="crop the images first: 21 = the centre 21×21, 21,24 = centre 21×24, "
                        "3:24,3:24 = rows 3..23 and columns 3..23 (applied to every input set)")
    p.add_argument("--pool", metavar="K",
                   help="then average-pool the images by K (K×K blocks; the size after --crop "
                        "must be divisible by K), e.g. 28×28 MNIST to 7×7: --crop 21 --pool 3 "
                        "or --pool 4")


#: the flag of each --fast-maps/--exact-maps setting (kernel_fn's ``fast_maps``), for messages
MAP_FLAGS = {True: "--fast-maps", False: "--exact-maps"}


def add_map_options(p):
    """--fast-maps/--exact-maps: kernel_fn's ``fast_maps`` (True/False; neither: None, the
    default) for every command that computes kernels (kernel, fit, predict); read by
    :func:`map_setting`."""
    maps = p.add_mutually_exclusive_group()
    maps.add_argument("--fast-maps", dest="fast_maps", action="store_const", const=True,
                      default=None,
                      help="relu/leaky_relu kernel maps take their arc-cosine (erf/gelu: "
                           "arcsine) from a minimax polynomial, in float64 too (proven error ≤ 3 "
                           "(erf, gelu: 7.5) roundoffs of the dtype relative to "
                           "√(K(x,x)K(x',x')), docs/math/fast-maps.md); by default the "
                           "polynomial is used for relu/leaky_relu in float32 and atan2 "
                           "otherwise")
    maps.add_argument("--exact-maps", dest="fast_maps", action="store_const", const=False,
                      help="relu/leaky_relu/erf/gelu kernel maps by atan2 in float32 too (~3-4× "
                           "slower per entry on CPU, docs/performance.md)")


def _map_names(net) -> list:
    """The kernel maps of ``net``'s nonlinearity layers (relu, erf, ...), in program order."""
    return list(dict.fromkeys(m.name for nd in net.derivation.nodes if nd.formulas is not None
                              for m in nd.formulas.reduced if hasattr(m, "fast_angles")))


def map_setting(args, nets) -> "bool | None":
    """kernel_fn's ``fast_maps`` for the parsed --fast-maps/--exact-maps; refused (InputError)
    when no network in ``nets`` has a map the flag switches (it would change nothing)."""
    setting = getattr(args, "fast_maps", None)
    if setting is None or any(net.fast_map_layers for net in nets):
        return setting
    names = ", ".join(dict.fromkeys(m for net in nets for m in _map_names(net))) or "none"
    specs = ", ".join(net.typed.spec.name for net in nets)
    raise InputError(f"{MAP_FLAGS[setting]} chooses how the relu, leaky_relu (α ≥ 0), erf and "
                     f"gelu kernel maps take their arc-cosine or arcsine, but {specs} has none "
                     f"of them (its maps: {names}), so the flag changes nothing: drop "
                     f"{MAP_FLAGS[setting]}")


def image_preprocessing(args) -> ImagePreprocessing:
    """The --crop/--pool of a parsed command line (``None`` when the command has none)."""
    pool = getattr(args, "pool", None)
    if isinstance(pool, str):
        try:
            pool = int(pool)
        except ValueError:
            raise InputError(f"--pool: the pooling factor must be a whole number ≥ 1, got "
                             f"{pool!r}") from None
    return ImagePreprocessing.parse(getattr(args, "crop", None), pool, ("--crop", "--pool"))


def refuse_preprocessing_of_random(args, preprocessing: ImagePreprocessing) -> None:
    """--crop/--pool act on --data; random inputs are drawn at the spec's input shape."""
    if preprocessing.active:
        used = " and ".join(f for f, v in (("--crop", args.crop), ("--pool", args.pool)) if v)
        raise InputError(f"{used} preprocess images read with --data; random inputs are drawn at "
                         "the spec's input shape already: drop " + used)


def _data_args(p, test_required: bool = False):
    p.add_argument("--train", required=True, metavar="FILE.npz",
                   help="training data (keys x/y, or x_train/y_train)")
    p.add_argument("--test", required=test_required, metavar="FILE.npz",
                   help="test data (keys x/y, or x_test/y_test; default: the --train file's "
                        "x_test/y_test)")
    p.add_argument("--x", dest="x_key", default=None, metavar="KEY", help="array key of the inputs")
    p.add_argument("--y", dest="y_key", default=None, metavar="KEY", help="array key of the targets")
    add_image_options(p)
    p.add_argument("--task", choices=("auto", "classification", "regression"), default="auto",
                   help="default: classification for integer labels, else regression")
    p.add_argument("--t", dest="t", default="inf",
                   help="training time(s) of gradient flow in units of 1/mean diag Θ (see "
                        "--t-unit), e.g. inf or 0.1,1,10,inf (default inf)")
    p.add_argument("--t-unit", choices=TIME_UNITS, default="mean-diag", help=T_UNIT_HELP)
    p.add_argument("--reg", type=float, default=DEFAULT_REG,
                   help=f"ridge, relative to the mean kernel diagonal (default {DEFAULT_REG:g})")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                   help="precision of the kernel computation (the solves are float64)")
    p.add_argument("--max-memory", default=DEFAULT_MEMORY, help=f"memory budget (default {DEFAULT_MEMORY})")
    add_map_options(p)
    _solver_args(p)


#: the conjugate-gradient options and their defaults (None: solvers.solve_regularised's,
#: 10·√n + 100 iterations)
CG_OPTIONS = {"cg_tol": ("--cg-tol", 1e-6), "cg_rank": ("--cg-rank", 200),
              "cg_max_iter": ("--cg-max-iter", None)}


def _solver_args(p):
    from .solvers import DENSE_LIMIT
    p.add_argument("--solver", choices=("auto", "dense", "cg"), default="auto",
                   help="how the kernel regression is solved: dense (eigendecomposition of the "
                        "training kernels in memory; every --t), cg (conjugate gradients "
                        "preconditioned by a partial pivoted Cholesky factor, reading the "
                        "kernels by blocks of rows; t = inf only, --reg > 0); auto (default): "
                        f"cg above {DENSE_LIMIT} training examples, else dense")
    p.add_argument("--cg-tol", type=float, default=None, metavar="TOL",
                   help="cg: relative residual ‖(K + r·I)α − y‖/‖y‖ to reach for every output "
                        "(default 1e-6); not reached: an error with the residual it got to")
    p.add_argument("--cg-rank", type=int, default=None, metavar="M",
                   help="cg: rank of the pivoted-Cholesky preconditioner (default 200)")
    p.add_argument("--cg-max-iter", type=int, default=None, metavar="N",
                   help="cg: most iterations (default 10·√n + 100 for n training examples)")


def solver_settings(args, n: int, times) -> dict:
    """{"solver", "tol", "rank", "max_iter"} for learning_curve/predict from --solver and the
    --cg-* options, for at most ``n`` training examples and the training ``times``. Refused
    (InputError): cg options where the dense solver is chosen (they would do nothing), cg with
    a finite t or without a ridge, options out of range."""
    from .predict import choose_solver
    from .solvers import DENSE_LIMIT
    kind = choose_solver(args.solver, n)
    given = [flag for key, (flag, _) in CG_OPTIONS.items() if getattr(args, key) is not None]
    why = {"auto": f"--solver auto takes it for {n} ≤ {DENSE_LIMIT} training examples",
           "dense": "--solver dense", "cg": ""}[args.solver]
    if kind == "dense":
        if given:
            raise InputError(f"{', '.join(given)} set the conjugate-gradient solve, but the dense "
                             f"solver is used ({why}): add --solver cg or drop "
                             f"{', '.join(given)}")
        return {"solver": args.solver}
    chosen = "" if args.solver == "cg" else f" (--solver auto takes it above {DENSE_LIMIT} " \
        "training examples)"
    finite = [t for t in times if math.isfinite(t)]
    if finite:
        raise InputError(f"the conjugate-gradient solver{chosen} gives kernel regression "
                         f"(t = inf) only, not --t {_fmt_t(finite[0])}: the dense solver's "
                         "eigendecomposition gives finite times (--solver dense)")
    if not args.reg > 0:
        raise InputError(f"the conjugate-gradient solver{chosen} needs a positive --reg (its "
                         f"convergence rests on the ridge), got {args.reg:g}")
    tol, rank, max_iter = (default if getattr(args, key) is None else getattr(args, key)
                           for key, (_, default) in CG_OPTIONS.items())
    if not 0 < tol < 1:
        raise InputError(f"--cg-tol must be in (0, 1), got {tol:g}")
    if rank < 0:
        raise InputError(f"--cg-rank must be ≥ 0, got {rank}")
    if max_iter is not None and max_iter < 1:
        raise InputError(f"--cg-max-iter must be ≥ 1, got {max_iter}")
    return {"solver": args.solver, "tol": tol, "rank": rank, "max_iter": max_iter}


def describe_solves(solves) -> str:
    """One line on the CG solves of a ConjugateGradientRegressor, for the CLI's output."""
    return (f"solver: conjugate gradients, {sum(r.iterations for r in solves)} iterations in "
            f"{len(solves)} solve(s), preconditioner rank {max(r.rank for r in solves)}, "
            f"relative residual ≤ {max(float(r.residuals.max()) for r in solves):.1e}")


def _load_train_test(args, need_test_y: bool):
    x_tr, y_tr, xk, yk = load_split(args.train, "train", args.x_key, args.y_key, need_y=True)
    test_path = args.test or args.train
    if args.test is None:
        arrays = _keys(args.train)
        if args.x_key is not None or "x_test" not in arrays:
            raise InputError(f"no test data: pass --test FILE.npz (the training file {args.train} has no "
                             "'x_test' array)")
    x_te, y_te, xk2, yk2 = load_split(test_path, "test", args.x_key, args.y_key, need_y=need_test_y)
    if x_tr.shape[1:] != x_te.shape[1:]:
        raise InputError(f"training inputs ({args.train}:'{xk}') have shape {x_tr.shape[1:]} per sample "
                         f"but test inputs ({test_path}:'{xk2}') have {x_te.shape[1:]}")
    if y_te is not None and y_tr.shape[1:] != y_te.shape[1:]:  # (6, 2) and (3, 3): a crash late
        raise InputError(f"training targets '{yk}' have shape {y_tr.shape} but test targets '{yk2}' "
                         f"have {y_te.shape}")
    return (x_tr, y_tr, f"{args.train}:'{xk}'"), (x_te, y_te, f"{test_path}:'{xk2}'")


def _check_limit(value, name):
    if value is not None and value < 1:
        raise InputError(f"{name} must be >= 1, got {value}")


def _check_reg(reg):
    """--reg before any kernel is computed (the solver refused it only afterwards, as
    diag_reg)."""
    if not (math.isfinite(reg) and reg >= 0):
        raise InputError(f"--reg must be a finite number >= 0, got {reg:g}")


# =========================================================================== predict
def _predict_args(p):
    p.add_argument("spec", type=Path, help="a spec file (.kc)")
    _data_args(p)
    p.add_argument("--nngp", action="store_true",
                   help="also give the NNGP posterior mean and variance (Bayesian network)")
    p.add_argument("--limit-train", type=int, metavar="N", help="use only the first N training examples")
    p.add_argument("--limit-test", type=int, metavar="N", help="use only the first N test examples")
    p.add_argument("--out", metavar="FILE.npz",
                   help="where to write the predictions (default: <spec name>_predictions.npz)")
    p.add_argument("--save-kernels", action="store_true",
                   help="also write the Gram matrices (ntk/nngp_train_train, ntk/nngp_test_train)")
    p.add_argument("--gram-dir", metavar="DIR",
                   help="write the Gram matrices to DIR/train and DIR/test tile by tile "
                        "(memory-mapped .npy files, as kernel --out-dir; the same command "
                        "after an interruption computes only the missing tiles); --solver cg "
                        "then reads the training kernels from disk by blocks of rows")


def run_predict(args) -> int:
    from ..api import compile as kc_compile
    from .predict import ConjugateGradientRegressor, GradientFlowPredictor, choose_solver
    _check_limit(args.limit_train, "--limit-train")
    _check_limit(args.limit_test, "--limit-test")
    _check_reg(args.reg)
    times = parse_times(args.t)
    if args.out is not None:
        out_path = output_path(args.out, "--out", suffix=".npz",
                               inputs=[args.spec, args.train, args.test])
    net = kc_compile(args.spec)
    fast_maps = map_setting(args, [net])
    if args.out is None:  # the default name needs the network's name
        out_path = output_path(f"{net.typed.spec.name}_predictions.npz", "predict (default output)",
                               inputs=[args.spec, args.train, args.test])
    (x_tr, y_tr, src_tr), (x_te, y_te, src_te) = _load_train_test(args, need_test_y=False)
    if args.limit_train:
        x_tr, y_tr = x_tr[:args.limit_train], y_tr[:args.limit_train]
    if args.limit_test:
        x_te = x_te[:args.limit_test]
        y_te = None if y_te is None else y_te[:args.limit_test]
    if len(x_tr) < 2:
        raise InputError(f"the training set {src_tr} has {len(x_tr)} example(s); at least 2 are needed")
    task = infer_task(y_tr, args.task)
    targets, k = make_targets(task, y_tr, [y_te])
    solver = solver_settings(args, len(x_tr), times)
    preprocessing = image_preprocessing(args)
    xa = prepare_inputs(x_tr, net, f"training inputs {src_tr}", preprocessing)
    xb = prepare_inputs(x_te, net, f"test inputs {src_te}", preprocessing)
    print(f"{net.typed.summary()}\n{task}: {len(xa)} training, {len(xb)} test examples; "
          f"kernels in {args.dtype}, reg {args.reg:g}"
          + (f"; images: {preprocessing.describe()}" if preprocessing.active else ""))
    grams, secs = compute_grams(net, xa, {"test": xb}, dtype=args.dtype, max_memory=args.max_memory,
                                fast_maps=fast_maps, out=args.gram_dir)
    print(f"kernels: {secs:.1f} s")
    scale = time_scale(grams["train"]["ntk"], args.t_unit)
    if args.t_unit == "mean-diag":
        print(f"times t in units of 1/mean diag Θ = {scale:.4g} (gradient-flow time t × "
              f"{scale:.4g}; --t-unit raw takes raw times)")
    use_cg = choose_solver(solver["solver"], len(xa)) == "cg"
    if use_cg:  # t = inf only (solver_settings)
        pred = ConjugateGradientRegressor(grams["train"]["ntk"], targets,
                                          nngp_train_train=grams["train"]["nngp"],
                                          diag_reg=args.reg, tol=solver["tol"],
                                          rank=solver["rank"], max_iter=solver["max_iter"])
        f = np.stack([pred.mean(grams["test"]["ntk"])] * len(times))
    else:
        pred = GradientFlowPredictor(solve_dtype(grams["train"]["ntk"], args.reg), targets,
                                     nngp_train_train=solve_dtype(grams["train"]["nngp"], args.reg),
                                     diag_reg=args.reg)
        f = pred.mean(grams["test"]["ntk"], np.asarray(times) * scale)
    out = {"t": np.asarray(times), "ntk_mean": f, "t_raw": np.asarray(times) * scale,
           "t_unit": np.asarray(args.t_unit)}
    if task == "classification":
        out["ntk_class"] = np.argmax(f, axis=-1)
    if args.save_kernels:
        for g in ("ntk", "nngp"):
            out[f"{g}_train_train"] = grams["train"][g]
            out[f"{g}_test_train"] = grams["test"][g]
    if args.nngp:
        # the prior variances k(x*, x*): one 1×1 Gram per test input (the diagonal only)
        kss = np.array([float(net.kernel_fn(xb[i:i + 1], None, "nngp", dtype=args.dtype,
                                            max_memory=args.max_memory, fast_maps=fast_maps)[0, 0])
                        for i in range(len(xb))])
        post = pred.nngp_posterior(grams["test"]["nngp"], kss)
        out["nngp_mean"], out["nngp_var"] = post.mean, post.var
        for w in post.warnings:
            print(f"note: {w}")
    if use_cg:
        print(describe_solves(pred.solves))
    if y_te is not None:
        out["y_test"] = np.asarray(y_te)
        for t, ft in zip(times, f):
            m = score(task, ft, y_te)
            print(f"NTK  t={_fmt_t(t):>8s}  " + "  ".join(f"{k}={v:.4f}" for k, v in m.items()))
        if args.nngp:
            m = score(task, out["nngp_mean"], y_te)
            print("NNGP posterior  " + "  ".join(f"{k}={v:.4f}" for k, v in m.items()))
    else:
        print("(no test targets: predictions only)")
    path = save_npz(out_path, out)
    print(f"wrote {path} (" + ", ".join(f"{k} {tuple(v.shape)}" for k, v in out.items()) + ")")
    return 0


# =========================================================================== fit
def _fit_args(p):
    p.add_argument("specs", nargs="+", type=Path, metavar="SPEC",
                   help="one or more spec files to compare")
    _data_args(p)
    p.add_argument("--sizes", default=None,
                   help="training-set sizes, nested prefixes of the training set, e.g. 100,200,400 "
                        f"(default: four sizes doubling up to min(n, {MAX_DEFAULT_TRAIN}))")
    p.add_argument("--limit-test", type=int, metavar="N", help="use only the first N test examples")
    p.add_argument("--json", metavar="OUT.json", help="write all results as JSON")
    p.add_argument("--plot", metavar="OUT.png", help="write the learning curves")


def fit(specs: Sequence, x_train, y_train, x_tests: Dict[str, np.ndarray], y_tests: Dict[str, np.ndarray],
        sizes: Sequence[int], times: Sequence[float] = (math.inf,), reg: float = DEFAULT_REG,
        task: str = "auto", dtype: str = "float32", max_memory=DEFAULT_MEMORY,
        log=print, time_unit: str = "mean-diag", preprocessing=None, fast_maps=None,
        solver=None) -> dict:
    """Learning curves of several specs on the same data. Kernels are computed once per spec for
    the largest size; smaller sizes are prefixes. ``times`` are in ``time_unit`` (default: units
    of 1/mean diag Θ, see :data:`~kernelc.methods.tasks.TIME_UNITS`); ``preprocessing``: an
    :class:`~kernelc.methods.data.ImagePreprocessing` applied to training and test inputs alike;
    ``fast_maps``: kernel_fn's; ``solver``: :func:`learning_curve`'s (default dense). Returns a
    JSON-ready dict."""
    from ..api import compile as kc_compile
    task = infer_task(y_train, task)
    _, k = make_targets(task, y_train, list(y_tests.values()))
    n_max = max(sizes)
    results, timing, info = [], {}, {}
    for spec in specs:
        net = spec if hasattr(spec, "kernel_fn") else kc_compile(spec)
        name = net.typed.spec.name
        if name in info:
            name = f"{name}#{len(info)}"
        xa = prepare_inputs(x_train[:n_max], net, "training inputs", preprocessing)
        xb = {t: prepare_inputs(v, net, f"test inputs '{t}'", preprocessing)
              for t, v in x_tests.items()}
        log(f"[{name}] {net.typed.summary()}; kernels for {n_max} training and "
            f"{sum(len(v) for v in xb.values())} test inputs ({dtype})")
        grams, secs = compute_grams(net, xa, xb, dtype=dtype, max_memory=max_memory,
                                    fast_maps=fast_maps)
        timing[name] = secs
        info[name] = {"summary": net.typed.summary(), "group": net.typed.group.name,
                      "spec": str(getattr(net.typed.spec, "filename", "")), "kernel_seconds": round(secs, 2)}
        log(f"[{name}] kernels: {secs:.1f} s")
        results += learning_curve(grams, task, np.asarray(y_train)[:n_max], y_tests, sizes, times, reg,
                                  spec=name, n_classes=k, time_unit=time_unit, solver=solver)
    return {"task": task, "sizes": list(map(int, sizes)), "t": [_fmt_t(t) for t in times],
            "t_unit": time_unit, "reg": reg,
            "dtype": dtype, "n_test": {t: int(len(v)) for t, v in x_tests.items()},
            "solver": (solver or {"solver": "dense"})["solver"],
            "specs": info, "results": results}


def run_fit(args) -> int:
    _check_limit(args.limit_test, "--limit-test")
    _check_reg(args.reg)
    times = parse_times(args.t)
    inputs = list(args.specs) + [args.train, args.test]
    json_path = None if args.json is None else output_path(args.json, "--json", inputs=inputs)
    plot_path = None if args.plot is None else \
        output_path(args.plot, "--plot", image=True, inputs=inputs)
    if json_path and plot_path and json_path.resolve() == plot_path.resolve():
        raise OutputError(f"--json and --plot name the same file {json_path}; give two names")
    (x_tr, y_tr, src_tr), (x_te, y_te, src_te) = _load_train_test(args, need_test_y=True)
    if args.limit_test:
        x_te, y_te = x_te[:args.limit_test], y_te[:args.limit_test]
    sizes = parse_sizes(args.sizes, len(x_tr))
    solver = solver_settings(args, max(sizes), times)
    if args.sizes is None and len(x_tr) > MAX_DEFAULT_TRAIN:
        print(f"note: using at most the first {MAX_DEFAULT_TRAIN} of {len(x_tr)} training examples; "
              "pass --sizes to choose")
    from ..api import compile as kc_compile
    preprocessing = image_preprocessing(args)
    nets = [kc_compile(s) for s in args.specs]
    fast_maps = map_setting(args, nets)
    for net in nets:  # check every spec against the data before any kernel is computed
        prepare_inputs(x_tr[:2], net, f"training inputs {src_tr}", preprocessing)
        prepare_inputs(x_te[:2], net, f"test inputs {src_te}", preprocessing)
    if preprocessing.active:
        print(f"images: {preprocessing.describe()}")
    if args.t_unit == "mean-diag" and any(0 < t < math.inf for t in times):
        print("times t in units of 1/mean diag Θ of each training kernel (--t-unit raw takes "
              "raw gradient-flow times)")
    res = fit(nets, x_tr, y_tr, {"test": x_te}, {"test": y_te}, sizes, times, args.reg, args.task,
              args.dtype, args.max_memory, time_unit=args.t_unit, preprocessing=preprocessing,
              fast_maps=fast_maps, solver=solver)
    res["train"], res["test"] = src_tr, src_te
    print_table(res["results"], res["task"])
    if json_path:
        print(f"wrote {write_text(json_path, json.dumps(res, indent=1))}")
    if plot_path:
        written = plot_curves(res["results"], plot_path, res["task"],
                              title=f"{res['task']}: {src_te}, {len(x_te)} test examples")
        print(f"wrote {written}")
    return 0


# =========================================================================== augment
def _augment_args(p):
    p.add_argument("spec", type=Path,
                   help="a plain-CNN spec (group Z2) with an invariant output")
    p.add_argument("--group", required=True, help="the point group to augment over (p2, p4, p4m, ...)")
    p.add_argument("--check", type=Path, metavar="SPEC_GCNN",
                   help="verify that the augmented CNN equals this GCNN (kernels and predictions)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--random", type=int, metavar="N", help="N random inputs (default 4)")
    src.add_argument("--data", metavar="FILE.npz", help="inputs (and labels) from an .npz file")
    p.add_argument("--x", dest="x_key", default=None, metavar="KEY",
                   help="array key of the inputs in --data (default: x, or x_train)")
    p.add_argument("--y", dest="y_key", default=None, metavar="KEY",
                   help="array key of the labels in --data")
    p.add_argument("--limit", type=int, metavar="N", help="use only the first N inputs of --data")
    add_image_options(p)
    p.add_argument("--noise", type=int, default=2, metavar="M",
                   help="noise test inputs off the data manifold for --check (default 2)")
    p.add_argument("--t", dest="t", default=None,
                   help="training times for --check in units of 1/mean diag Θ (see --t-unit; "
                        "default 0.1,1,10,inf)")
    p.add_argument("--t-unit", choices=TIME_UNITS, default="mean-diag", help=T_UNIT_HELP)
    p.add_argument("--dtype", choices=("float32", "float64"), default="float64")
    p.add_argument("--tol", type=float, default=None,
                   help="relative tolerance of --check (default 1e-8 for float64, 1e-4 for float32)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-memory", default=DEFAULT_MEMORY)
    p.add_argument("--out", metavar="FILE.npz", help="write the augmented Gram matrices")


def run_augment(args) -> int:
    from ..api import compile as kc_compile
    from ..groups import get_group
    from .augment import augmented_kernel, check_augmentation
    _check_limit(args.limit, "--limit")
    if args.seed < 0:  # numpy's default_rng refused it: an internal error
        raise InputError(f"--seed must be ≥ 0, got {args.seed}")
    if args.tol is not None and not 0 < args.tol < math.inf:
        raise InputError(f"--tol must be a positive number, got {args.tol:g}")
    if args.noise < 0:
        raise InputError(f"--noise must be ≥ 0, got {args.noise}")
    out_path = None if args.out is None else \
        output_path(args.out, "--out", suffix=".npz", inputs=[args.spec, args.check, args.data])
    cnn = kc_compile(args.spec)
    group = get_group(args.group)
    shape = input_shape(cnn)
    rng = np.random.default_rng(args.seed)
    y = None
    preprocessing = image_preprocessing(args)
    if args.data:
        x, y, xk, _ = load_split(args.data, "train", args.x_key, args.y_key, need_y=False)
        if args.limit:
            x, y = x[:args.limit], None if y is None else y[:args.limit]
        x = prepare_inputs(x, cnn, f"inputs {args.data}:'{xk}'", preprocessing)
    else:
        if args.limit is not None:
            raise InputError("--limit takes the first N inputs of --data; with random inputs "
                             "give their number: --random N")
        refuse_preprocessing_of_random(args, preprocessing)
        n = 4 if args.random is None else args.random
        if n < 1:
            raise InputError("--random needs at least one input")
        x = rng.normal(size=(n,) + shape)
    if args.check is None:
        if args.t is not None:
            raise InputError("--t sets the training times of --check; without --check augment "
                             "only computes kernels: add --check SPEC_GCNN or drop --t")
        grams = augmented_kernel(cnn, group, x, None, dtype=args.dtype, max_memory=args.max_memory)
        print(f"{cnn.typed.summary()}\nkernel of the ensemble trained with full {group.name} "
              f"augmentation (orbit average over {group.order} elements), {len(x)} inputs:")
        from ..render import print_grams
        print_grams(grams, labelled_shape=False)
        if out_path:
            print(f"wrote {save_npz(out_path, grams)}")
        return 0
    gcnn = kc_compile(args.check)
    times = None if args.t is None else parse_times(args.t)
    if y is not None and infer_task(y) != "classification":
        y = np.asarray(y, np.float64)
    report = check_augmentation(cnn, gcnn, group, x, y=y, n_noise=args.noise, times=times,
                                time_unit=args.t_unit, dtype=args.dtype, tol=args.tol,
                                seed=args.seed,
                                max_memory=args.max_memory)
    print(report)
    if report.passed:
        return 0
    bar = "!" * 78
    print(f"{bar}\nAUGMENTATION CHECK FAILED: the {group.name}-augmented CNN '{cnn.typed.spec.name}' and "
          f"the GCNN '{gcnn.typed.spec.name}' DO NOT AGREE\n(kernels differ by up to "
          f"{report.kernel_max:.2e}, predictions by up to {report.prediction_max:.2e}; tolerance "
          f"{report.tol:.0e})\n{bar}", file=sys.stderr)
    return 1


# =========================================================================== registration
def add_fit_parser(COMMANDS):
    help_ = "learning curves: NTK/NNGP kernel regression for several specs and training-set sizes"
    COMMANDS["fit"] = (lambda sub: _fit_args(sub.add_parser("fit", help=help_, description=help_)),
                       run_fit)


def add_predict_parser(COMMANDS):
    help_ = ("predictions of the infinitely wide network trained by gradient flow (NTK; t = inf is "
             "kernel regression), with metrics")
    COMMANDS["predict"] = (lambda sub: _predict_args(sub.add_parser("predict", help=help_,
                                                                    description=help_)), run_predict)


def add_augment_parser(COMMANDS):
    help_ = ("kernel of a CNN ensemble trained with full data augmentation over a group; --check: "
             "verify it equals the matching GCNN")
    COMMANDS["augment"] = (lambda sub: _augment_args(sub.add_parser("augment", help=help_,
                                                                    description=help_)), run_augment)
