"""Data augmentation ⇔ GCNN: the orbit-averaged kernel of a plain CNN and a checker.

The theorem (docs/math/augmentation.md; Gerken & Kessel; Misof, Kessel, Gerken 2025): an ensemble of
infinitely wide CNNs trained with *full* data augmentation over a point group H has the NTK (and
NNGP) of the orbit average

    k_DA(f, f') = (1/|H|) Σ_{h∈H} k(f, ρ(h) f'),

and, when the CNN is the plain counterpart of a GCNN that starts with a lifting layer (same
filters, ``lift``/``gconv`` -> ``conv``, ``group_pool`` -> ``avg_pool`` + ``flatten``), that
average *is* the GCNN's kernel. So the mean predictions of the augmented CNN ensemble and of the
GCNN ensemble agree at every training time.

The single average over the second argument is the augmentation kernel only when the CNN kernel is
*jointly* invariant, k(ρ(h)f, ρ(h)f') = k(f, f'). That holds when every spatial filter support is
ρ(H)-invariant (centred k×k boxes are, for the square-lattice groups) and the input box is: the
weight distribution is then invariant. :func:`augmented_kernel` checks this and refuses otherwise.

:func:`check_augmentation` computes both sides, on the given inputs and on noise inputs off the
data manifold, compares NNGP and NTK Gram matrices and the mean predictions of gradient flow at
several times (including t = ∞), and reports the largest relative differences.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..errors import InputError, KernelcError, SpecError

GET = ("nngp", "ntk")


# --------------------------------------------------------------------------- helpers
def _compiled(net, what: str):
    """A CompiledKernel from a CompiledKernel, a spec path/text or a parsed Spec."""
    if hasattr(net, "kernel_fn") and hasattr(net, "typed"):
        return net
    from ..api import compile as kc_compile
    try:
        return kc_compile(net)
    except KernelcError:
        raise
    except Exception as exc:  # noqa: BLE001 - anything else is a usage error of this function
        raise InputError(f"{what} must be a compiled spec, a spec file or spec text ({exc})") from None


def _group(group, default=None):
    from ..groups import get_group
    if group is None:
        if default is None:
            raise InputError("no group given")
        return default
    from ..groups import LatticeGroup
    if isinstance(group, str):
        group = get_group(group)
    if isinstance(group, LatticeGroup):
        return group
    if hasattr(group, "order") and hasattr(group, "name"):
        # the ensemble averages over permutations of the sites: a lattice point group
        raise SpecError(f"`augment` averages a plain CNN's kernel over a point group that "
                        f"permutes the sites of the grid; {group.name} is not a lattice point "
                        "group (its rotations are not all permutations of the grid)",
                        suggestion="use a lattice group such as p4 or p4m")
    raise InputError(f"group must be a group name or a LatticeGroup, got {group!r}")


def _layer_desc(tg, node) -> str:
    """``kind(hp...)`` of a layer without spans, widths and rotational supports, for diffs."""
    nd = tg.node(node)
    parts = []
    for k, v in sorted(nd.hp.items()):
        if v is None and k in ("size", "stride"):  # avg_pool without windows: the global mean
            continue
        if k in ("width", "rotations", "support", "map", "degree"):
            if k == "map":
                parts.append(f"phi={v.name}")
            continue
        parts.append(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}")
    if "support" in nd.hp:
        parts.append(f"support={len(nd.hp['support'])} points")
    return f"{nd.kind}({', '.join(parts)})"


def _layers(tg) -> List[str]:
    return [_layer_desc(tg, n) for n in tg.order()
            if tg.node(n).kind not in ("input", "fanout", "identity")]


def _require_da_cnn(cnn, group) -> None:
    """The CNN spec must have a trivial group, an invariant (vector) output, a box invariant under
    ρ(H) and ρ(H)-invariant filter supports (joint invariance of its kernel)."""
    tg = cnn.typed
    name = tg.spec.name
    if tg.group.order != 1:
        raise SpecError(f"spec '{name}' already has the group {tg.group.name}; `augment` takes a "
                        "plain CNN (group Z2 / Z3) and averages its kernel over a point group")
    if tg.group.dim != group.dim:
        raise SpecError(f"spec '{name}' works on Z^{tg.group.dim} but {group.name} acts on Z^{group.dim}")
    if tg.output_type.domain != "vector":
        raise SpecError(f"spec '{name}' has a spatial output ({tg.output_type}); the augmentation "
                        "kernel needs an invariant output: end with avg_pool/flatten and dense layers")
    try:
        group.site_permutation(tuple(tg.spec.input.shape))
    except KernelcError as exc:
        raise SpecError(f"the input box of '{name}' cannot be transformed by {group.name}: "
                        f"{exc.message}") from None
    for n in tg.order():
        nd = tg.node(n)
        if nd.kind in ("conv", "lift", "gconv") and not group.is_invariant(nd.hp["support"]):
            raise SpecError(f"the filter support of {nd.name} in '{name}' is not invariant under "
                            f"ρ({group.name}); its kernel is then not jointly invariant and the orbit "
                            "average is not the kernel of the augmented ensemble")
        if nd.kind == "avg_pool" and nd.hp.get("size") is not None and group.order > 1:
            # ρ(H) maps windows to windows when they lie symmetrically about the box centre:
            # (n − k) divisible by s on every axis (docs/math/identities.md, (E) and the lemma)
            box = tg.node(tg.inputs(n)[0]).out.shape
            k, s = nd.hp["size"], nd.hp["stride"]
            if any((b - k) % s for b in box):
                raise SpecError(f"the windows of {nd.name} (size={k}, stride={s}) on the "
                                f"{'×'.join(map(str, box))} box are not symmetric about its "
                                "centre (n − size is not a multiple of the stride), so "
                                f"ρ({group.name}) need not map windows to windows: the kernel is "
                                "then not jointly invariant and the orbit average is not the "
                                "kernel of the augmented ensemble")


def _orbit(group, x: np.ndarray) -> np.ndarray:
    """(|H|·N, ...) stack: block h holds ρ(h) x."""
    axes = tuple(range(1, 1 + group.dim))
    return np.concatenate([np.asarray(group.transform_signal(x, h, spatial_axes=axes))
                           for h in range(group.order)])


def _inputs(net, x, name: str) -> np.ndarray:
    """x as float (N, *box, C) for the spec of ``net`` (uint8 scaled to [0, 1])."""
    arr = np.asarray(x)
    shape = tuple(net.typed.spec.input.shape)
    c = net.typed.spec.input.channels
    if arr.dtype == np.uint8:
        arr = arr / 255.0
    if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise InputError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if c == 1 and tuple(arr.shape[1:]) == shape:
        arr = arr[..., None]
    if tuple(arr.shape[1:]) != shape + (c,):
        raise InputError(f"{name} has shape {tuple(arr.shape)}, but spec '{net.typed.spec.name}' "
                         f"takes (N, {', '.join(map(str, shape + (c,)))}) inputs")
    if arr.shape[0] == 0:
        raise InputError(f"{name} holds no inputs")
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{name} contains {int(np.sum(~np.isfinite(arr)))} NaN/inf value(s)")
    return arr.astype(np.float64)


# --------------------------------------------------------------------------- the kernel
def augmented_kernel(cnn, group, x1, x2=None, get=GET, *, dtype: str = "float64",
                     max_memory=None, progress=None):
    """The kernel of an ensemble of (infinitely wide) CNNs trained with full augmentation over
    the point group of ``group``: ``(1/|H|) Σ_h k(x1, ρ(h) x2)``.

    ``cnn``: compiled plain-CNN spec (or a spec path/text); ``group``: a name (``"p4"``) or a
    LatticeGroup; ``x2=None`` means ``x2 = x1`` (the result is then symmetrised exactly: the
    average is symmetric in theory, but the two orders of summation round differently).
    Returns a dict like ``kernel_fn`` (or one array when ``get`` is a string).
    """
    cnn = _compiled(cnn, "cnn")
    group = _group(group)
    _require_da_cnn(cnn, group)
    from ..runtime.driver import check_get
    single, names = check_get(get)
    a = _inputs(cnn, x1, "x1")
    kw = dict(dtype=dtype, max_memory=max_memory, progress=progress)
    if x2 is not None:
        b = _inputs(cnn, x2, "x2")
        grams = cnn.kernel_fn(a, _orbit(group, b), names, symmetric=False, **kw)
        out = {k: np.asarray(g, np.float64).reshape(a.shape[0], group.order, b.shape[0]).mean(axis=1)
               for k, g in grams.items()}
        return out[names[0]] if single else out
    # x2 = x1: the identity block is the CNN's own Gram matrix, computed by its symmetric path
    # (half the pairs; the diagonal from the self pass, where correlations are exactly 1 — for
    # ReLU the arccos there is ill-conditioned, and a cross pass would add ~1e-12 round-off).
    # The other |H|-1 blocks go through one cross pass; the average is then symmetrised (it is
    # symmetric in exact arithmetic: k(f, ρ(h)f') = k(ρ(h⁻¹)f, f') by joint invariance).
    n = a.shape[0]
    own = cnn.kernel_fn(a, None, names, **kw)
    others = [h for h in range(group.order) if h != group.identity]
    axes = tuple(range(1, 1 + group.dim))
    out = {k: np.asarray(v, np.float64).copy() for k, v in own.items()}
    if others:
        orbit = np.concatenate([np.asarray(group.transform_signal(a, h, spatial_axes=axes))
                                for h in others])
        cross = cnn.kernel_fn(a, orbit, names, symmetric=False, **kw)
        for k, g in cross.items():
            out[k] += np.asarray(g, np.float64).reshape(n, len(others), n).sum(axis=1)
    for k in out:
        avg = out[k] / group.order
        out[k] = 0.5 * (avg + avg.T)
    return out[names[0]] if single else out


# --------------------------------------------------------------------------- the check
@dataclass
class AugmentationReport:
    """Result of :func:`check_augmentation`. ``kernel_diffs[kernel][block]`` and
    ``prediction_diffs[label]`` are max relative differences ``max|A−B| / max|B|`` (B = GCNN)."""

    cnn_name: str
    gcnn_name: str
    group: str
    n_train: int
    n_test: int
    tol: float
    dtype: str
    times: List[float]
    kernel_diffs: Dict[str, Dict[str, float]] = field(default_factory=dict)
    prediction_diffs: Dict[str, float] = field(default_factory=dict)
    condition: float = 1.0
    notes: List[str] = field(default_factory=list)
    time_unit: str = "mean-diag"  # of ``times``; gradient-flow time = t × time_scale
    time_scale: float = 1.0

    @property
    def kernel_max(self) -> float:
        vals = [v for d in self.kernel_diffs.values() for v in d.values()]
        return max(vals) if vals else float("nan")

    @property
    def prediction_max(self) -> float:
        return max(self.prediction_diffs.values()) if self.prediction_diffs else 0.0

    @property
    def max_diff(self) -> float:
        return max(self.kernel_max, self.prediction_max)

    @property
    def prediction_tol(self) -> float:
        """``tol · cond``: a relative kernel perturbation ε moves the solution of the training
        system by up to cond·ε (first-order bound), so that is what the predictions can show when
        the kernels agree to ``tol``. For ReLU the NTK itself carries ~1e-12 round-off (its
        arccos is ill-conditioned at correlation 1, on the Gram diagonal), which the t = ∞ solve
        amplifies to ~1e-9 on small random sets; the kernels are held to ``tol`` itself."""
        return self.tol * max(1.0, self.condition)

    @property
    def passed(self) -> bool:
        k, p = self.kernel_max, self.prediction_max
        return bool(np.isfinite(k) and np.isfinite(p) and k <= self.tol and p <= self.prediction_tol)

    def __str__(self) -> str:
        lines = [f"data augmentation over {self.group}: CNN '{self.cnn_name}' (orbit-averaged) vs "
                 f"GCNN '{self.gcnn_name}', {self.n_train} training inputs, {self.n_test} test "
                 f"inputs (incl. noise off the data manifold), {self.dtype}",
                 "max relative differences  max|A-B|/max|B|"
                 + (f" (times t in units of 1/mean diag Θ = {self.time_scale:.3g})"
                    if self.time_unit == "mean-diag" else " (raw gradient-flow times t)") + ":"]
        for k, blocks in self.kernel_diffs.items():
            lines.append(f"  {k.upper():5s} kernel  " + "  ".join(f"{b} {v:.2e}" for b, v in blocks.items()))
        for label, v in self.prediction_diffs.items():
            lines.append(f"  prediction {label:22s} {v:.2e}")
        lines.append(f"  kernels: largest {self.kernel_max:.2e} (tolerance {self.tol:.0e});  "
                     f"predictions: largest {self.prediction_max:.2e} (tolerance {self.tol:.0e} x "
                     f"cond {self.condition:.3g} of the training kernels = {self.prediction_tol:.1e})")
        lines.extend(self.notes)
        if self.passed:
            lines.append(f"AGREE: the {self.group}-augmented CNN ensemble and the GCNN have the same "
                         "kernels and the same mean predictions")
        return "\n".join(lines)


def _rel(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    scale = np.max(np.abs(b))
    diff = np.max(np.abs(a - b))
    if scale == 0:
        return 0.0 if diff == 0 else float("inf")
    return float(diff / scale)


def _cond(k, diag_reg: float) -> float:
    """2-norm condition number of a (regularised) PSD training kernel; inf when singular."""
    k = np.asarray(k, np.float64)
    ev = np.linalg.eigvalsh(k + diag_reg * np.mean(np.diag(k)) * np.eye(k.shape[0]))
    return float(ev[-1] / ev[0]) if ev[0] > 0 else float("inf")


def _noise_like(x: np.ndarray, n: int, rng) -> np.ndarray:
    """Gaussian noise with the mean and spread of x: images no data set contains."""
    mu, sd = float(np.mean(x)), float(np.std(x)) or 1.0
    return mu + sd * rng.normal(size=(n,) + x.shape[1:])


def _targets(y, n: int, rng) -> np.ndarray:
    if y is None:
        return rng.normal(size=(n, 2))
    y = np.asarray(y)
    if y.shape[0] != n:
        raise InputError(f"y has {y.shape[0]} rows but there are {n} training inputs")
    if np.issubdtype(y.dtype, np.integer):
        from .metrics import one_hot
        return one_hot(y, max(2, int(y.max()) + 1))
    return y.astype(np.float64)


def _both_sides(cnn, gcnn, group, xs, dtype, max_memory, progress):
    """Gram matrices of all inputs ``xs`` (train then test) for the GCNN and the augmented CNN."""
    g = gcnn.kernel_fn(xs, None, GET, dtype=dtype, max_memory=max_memory, progress=progress)
    # x2 = xs explicitly: one cross call against the whole orbit (fewer jit compilations than the
    # symmetric path for these tiny sets; the same accuracy), then symmetrised like the GCNN's.
    a = augmented_kernel(cnn, group, xs, xs, GET, dtype=dtype, max_memory=max_memory,
                         progress=progress)
    return {k: 0.5 * (v + v.T) for k, v in a.items()}, g


def check_augmentation(cnn_compiled, gcnn_compiled, group=None, x=None, *, y=None, x_test=None,
                       n_noise: int = 2, n_random: int = 4, times: Optional[Sequence[float]] = None,
                       time_unit: str = "mean-diag", dtype: str = "float64", tol: Optional[float] = None, seed: int = 0,
                       diag_reg: float = 0.0, max_memory=None, progress=None,
                       diagnose: bool = True) -> AugmentationReport:
    """Check that the CNN trained with full augmentation over ``group`` equals the GCNN.

    ``x``: training inputs (default: ``n_random`` standard-normal inputs); ``y``: their targets
    (integer labels -> centred one-hot; default: random Gaussian targets). Test inputs: ``x_test``
    if given, plus ``n_noise`` noise inputs off the data manifold and one transformed copy
    ρ(h)x of each training input. Compared: NNGP and NTK on train×train and test×train, and the
    mean predictions of gradient flow at ``times`` (default 0.1, 1, 10 and ∞) plus the NNGP
    posterior mean. ``time_unit`` (:data:`~kernelc.methods.tasks.TIME_UNITS`): "mean-diag" (the
    default) measures ``times`` in units of 1/mean diag Θ of the GCNN's training NTK, "raw" in
    gradient-flow time. ``tol`` defaults to 1e-8 (float64) or 1e-4 (float32).

    When the check fails and ``diagnose`` is set, the GCNN is also compared with the orbit
    average of its *own* matching CNN, to tell a spec pair that does not correspond (the usual
    case: different W_std, filters, nonlinearity) from a compiler bug.
    """
    from .predict import GradientFlowPredictor

    cnn = _compiled(cnn_compiled, "cnn_compiled")
    gcnn = _compiled(gcnn_compiled, "gcnn_compiled")
    group = _group(group, gcnn.typed.group)
    notes: List[str] = []
    gg = gcnn.typed.group
    if gg.order == 1:
        raise SpecError(f"spec '{gcnn.typed.spec.name}' has no point group to check against "
                        "(its group is trivial): pass the GCNN spec to --check")
    if gg.name != group.name or gg.order != group.order:
        notes.append(f"note: augmenting over {group.name} (|H|={group.order}), but the GCNN "
                     f"'{gcnn.typed.spec.name}' uses {gg.name} (|H|={gg.order})")
    _require_da_cnn(cnn, group)
    if dtype not in ("float32", "float64"):
        raise InputError(f"dtype must be float32 or float64, got {dtype!r}")
    tol = (1e-8 if dtype == "float64" else 1e-4) if tol is None else float(tol)
    if not 0 < tol < math.inf:  # tol ≤ 0 or NaN failed every check, "a kernelc bug"
        raise InputError(f"tol (CLI: --tol) must be a positive number, got {tol:g}")
    if n_noise < 0:
        raise InputError(f"n_noise (CLI: --noise) must be ≥ 0, got {n_noise}")
    rng = np.random.default_rng(seed)
    shape = tuple(cnn.typed.spec.input.shape) + (cnn.typed.spec.input.channels,)
    if tuple(gcnn.typed.spec.input.shape) + (gcnn.typed.spec.input.channels,) != shape:
        raise SpecError(f"the specs take different inputs: '{cnn.typed.spec.name}' {shape}, "
                        f"'{gcnn.typed.spec.name}' "
                        f"{tuple(gcnn.typed.spec.input.shape) + (gcnn.typed.spec.input.channels,)}")
    if x is None:
        if n_random < 2:
            raise InputError("check_augmentation needs at least 2 training inputs")
        x = rng.normal(size=(n_random,) + shape)
    xtr = _inputs(cnn, x, "x")
    if xtr.shape[0] < 2:
        raise InputError(f"check_augmentation needs at least 2 training inputs, got {xtr.shape[0]}")
    n = xtr.shape[0]
    parts = [] if x_test is None else [_inputs(cnn, x_test, "x_test")]
    if n_noise > 0:
        parts.append(_noise_like(xtr, n_noise, rng))
    hs = rng.integers(1, group.order, size=n) if group.order > 1 else np.zeros(n, int)
    parts.append(np.stack([np.asarray(group.transform_signal(xtr[i], int(h)))
                           for i, h in enumerate(hs)]))
    xte = np.concatenate(parts)
    xs = np.concatenate([xtr, xte])
    yt = _targets(y, n, rng)

    a, g = _both_sides(cnn, gcnn, group, xs, dtype, max_memory, progress)
    kd = {}
    for k in GET:
        kd[k] = {"train": _rel(a[k][:n, :n], g[k][:n, :n]),
                 "test": _rel(a[k][n:, :n], g[k][n:, :n])}
    # Mean predictions: gradient flow with each side's own NTK, at several times.
    pa = GradientFlowPredictor(a["ntk"][:n, :n], yt, nngp_train_train=a["nngp"][:n, :n], diag_reg=diag_reg)
    pg = GradientFlowPredictor(g["ntk"][:n, :n], yt, nngp_train_train=g["nngp"][:n, :n], diag_reg=diag_reg)
    from .tasks import time_scale
    times = [0.1, 1.0, 10.0, np.inf] if times is None else [float(t) for t in times]
    scale = time_scale(g["ntk"][:n, :n], time_unit)  # the GCNN's: the reference side
    fa = pa.mean(a["ntk"][n:, :n], np.asarray(times) * scale)
    fg = pg.mean(g["ntk"][n:, :n], np.asarray(times) * scale)
    pdiffs = {}
    for i, t in enumerate(times):
        pdiffs[f"NTK t={'inf' if np.isinf(t) else f'{t:.3g}'}"] = _rel(fa[i], fg[i])
    test_diag_a = np.diag(a["nngp"][n:, n:])
    test_diag_g = np.diag(g["nngp"][n:, n:])
    ma = pa.nngp_posterior(a["nngp"][n:, :n], test_diag_a)
    mg = pg.nngp_posterior(g["nngp"][n:, :n], test_diag_g)
    pdiffs["NNGP posterior mean"] = _rel(ma.mean, mg.mean)
    pdiffs["NNGP posterior var"] = _rel(ma.var, mg.var)
    cond = max(_cond(g["ntk"][:n, :n], diag_reg), _cond(g["nngp"][:n, :n], diag_reg))

    report = AugmentationReport(cnn.typed.spec.name, gcnn.typed.spec.name, group.name, n,
                                xte.shape[0], tol, dtype, times, kd, pdiffs, cond, notes,
                                time_unit, scale)
    if not report.passed and diagnose:
        report.notes.extend(_diagnose(cnn, gcnn, group, xs, g, dtype, tol, max_memory))
    return report


def _diagnose(cnn, gcnn, group, xs, g, dtype, tol, max_memory) -> List[str]:
    """Why did the check fail? Compare with the GCNN's own matching CNN and diff the layers."""
    from ..api import compile as kc_compile
    from ..families.lattice.orbit import matching_cnn_spec, orbit_precondition
    lines = []
    ok, reason = orbit_precondition(gcnn.typed)
    if not ok:
        return [f"the GCNN '{gcnn.typed.spec.name}' has no plain-CNN counterpart: {reason}"]
    try:
        # the matching CNN lives on the GCNN's lattice (hexagonal for p6)
        own = kc_compile(matching_cnn_spec(gcnn.typed.spec))
        own_a = augmented_kernel(own, gcnn.typed.group, xs, xs, GET, dtype=dtype, max_memory=max_memory)
    except KernelcError as exc:
        return [f"could not build the GCNN's matching CNN: {exc.message}"]
    own_diff = max(_rel(own_a[k], g[k]) for k in GET)
    mine, theirs = _layers(cnn.typed), _layers(own.typed)
    diffs = [f"    layer {i + 1}: given CNN {m}   vs   matching CNN {t}"
             for i, (m, t) in enumerate(zip(mine, theirs)) if m != t]
    if len(mine) != len(theirs):
        diffs.append(f"    the given CNN has {len(mine)} layers, the matching CNN {len(theirs)}")
    if own_diff <= tol:
        lines.append(f"diagnosis: the GCNN agrees with the orbit average of its own matching CNN "
                     f"(max rel. diff {own_diff:.1e}), so the spec pair does not correspond:")
        lines.extend(diffs or ["    (the layers print the same; compare the inputs/padding)"])
    else:
        lines.append(f"diagnosis: the GCNN disagrees even with its own matching CNN (max rel. diff "
                     f"{own_diff:.1e}): this is a kernelc bug, please report it")
        lines.extend(diffs)
    if group.name != gcnn.typed.group.name:
        lines.append(f"    the augmentation group {group.name} is not the GCNN's group "
                     f"{gcnn.typed.group.name}")
    return lines
