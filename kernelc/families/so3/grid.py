"""The default sampling grid of the SO(3) family's layers, chosen for accuracy (docs/so3.md,
"Discretisation and aliasing").

A ``lift``/``gconv`` of band limit L samples its output K̃ on the SO(3) grid of bandwidth B,
(2B)³ points; the nonlinearity after it is applied on that grid, and the next layer integrates
the result with the grid quadrature: a ``gconv`` of band L' reads its Wigner coefficients of
degree ℓ < L', ``group_pool`` its mean (L' = 1). The quadrature of bandwidth B integrates
every function of band limit 2B exactly, so:

* **polynomial φ of degree d** (identity: d = 1; a composition: the product of the degrees).
  φ(K̃) has degree ≤ d·(L−1) and its products with D^ℓ, ℓ < L', have degree ≤ d·(L−1) + L' − 1,
  so the next layer is exact iff

      d·(L − 1) + L' ≤ 2B,

  and the default is the smallest such B ≥ L (exact to round-off).
* **any other φ** (relu, erf, ...): φ(K̃) is not band-limited and the quadrature aliases. The
  error is *estimated* on a probe, the worst case we know of: the self pair of a zonal signal,
  K̃(q) = v ρ(β(q)) with ρ(β) = Σ_{ℓ<L} c_ℓ P_ℓ(cos β), c_ℓ ≥ 0, Σ c_ℓ = 1. There ρ = 1 on the
  whole circle β = 0 (the signal's stabiliser), where relu-like maps have a kink
  (K̇ ∝ π − arccos ρ ~ β): a line singularity, which aliases more than the point singularity
  of a generic signal (ρ = 1 at q = e only) or the smooth K̃ of two different signals. The
  probe depends on β alone, so its Wigner coefficients are F^ℓ_00 = (2ℓ+1)·½∫ h(β) P_ℓ(cos β)
  sin β dβ: the grid gives them by the Driscoll–Healy rule in β (the α, γ sums are exact for a
  function of β), the reference by Gauss–Legendre in β (h is smooth in β ∈ [0, π], the kink
  being at the end point, so 2,000 nodes are exact to round-off). For h the NNGP map F(ρ) and
  the NTK term K̇(ρ)·ρ (Θ = K after a lift) at unit variance, the estimate of one layer is

      e(B) = max over the probes and h of Σ_{ℓ<L'} |F^ℓ_grid − F^ℓ_exact| / h(0),

  an error of the next layer's linear output in units of its value at correlation 1
  (sqrt(K(x,x)K(x',x'))): Σ_ℓ|δF^ℓ| bounds the change of Σ_ℓ F^ℓ_00 P_ℓ anywhere, |P_ℓ| ≤ 1.
  Probes: c_ℓ ∝ 1, c_ℓ ∝ 2ℓ+1 and all weight on ℓ = L−1. On QM9 atoms (L = 4, relu, NTK) the
  estimate is 1.5e-4 at B = 8 and 4e-5 at B = 12, where the measured largest error of the
  atom NTK against B = 24 is 1.3e-4 and 2.1e-5 (docs/so3.md).

  The errors of the layers add, and the probe is not a strict worst case: measured errors
  reach 1.3× a layer's estimate (erf, then abs before group_pool, L = 2), and a layer's K
  error moves the next NTK through K̇, whose slope is unbounded at ρ = 1 for relu and abs. So
  the grids are raised greedily, each step on the layer whose estimate falls most per added
  grid point, until SAFETY (2) × the sum is ≤ ``tol``. Why measure rather than bound: the Taylor coefficients of relu's dual activation
  decay like k^(−3/2) in ρ^k, so a bound from them (Σ_{k>K}|c_k| with ρ = 1) does not go
  below 1e-3 for any affordable grid, while the kernels converge like B^(−3) in practice.

``grid=`` on a layer overrides the choice (its estimate is still shown by ``explain``).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import numpy as np

from ...errors import SpecError
from ...runtime.harmonic import MAX_BANDWIDTH, dh_weights, grid_angles

#: Default relative kernel error (units of sqrt(K(x,x)K(x',x'))) a non-polynomial network's
#: grids are chosen for: SAFETY × (sum of the layers' estimates) ≤ tol. Not 1e-6: relu's NTK
#: converges like B^(−3), so 1e-6 needs B ≈ 40 at L = 4 (cost ×1,000 over B = L) and no
#: B ≤ 64 at L = 6. 6e-5 is what rotation invariance of the QM9 molecule kernels to 1e-6
#: takes (measured 4.9e-7 relative to the largest entry, where 2e-4 gives 2.8e-6; docs/so3.md).
DEFAULT_TOL = 6e-5

#: Margin between the estimate and ``tol`` (module docstring: measured errors reach 1.3× the
#: estimate of a layer, and errors propagate from layer to layer).
SAFETY = 2.0

#: The consumer kinds of a sampled SO(3) signal and the band they read (group_pool: ℓ = 0).
_CONSUMERS = ("lift", "gconv", "group_pool")

_PROBES = ("flat", "2l+1", "top")
_REFERENCE_NODES = 2000


@dataclass(frozen=True)
class GridChoice:
    """How a layer's grid was chosen: ``rule`` "exact" (polynomial: degree, condition),
    "estimate" (aliasing estimate ``error`` for the whole network's tolerance ``tol``) or
    "given" (``grid=`` in the spec; ``error`` its estimate, 0 when exact)."""

    grid: int
    band: int
    rule: str
    error: float
    tol: float
    why: str

    def cost(self) -> str:
        n = (2 * self.grid) ** 3
        ratio = (self.grid / self.band) ** 3
        return f"(2B)³ = {n:,} grid values per pair ({ratio:.3g}× the grid B = L = {self.band})"

    def note(self) -> str:
        """One line for ``explain``: the grid, why, its error estimate and its cost."""
        return f"grid B = {self.grid}: {self.why}; cost {self.cost()}"

    def __str__(self) -> str:  # the typed graph's one-line rendering (kernelc check)
        return self.rule if self.rule == "exact" else f"{self.rule} {self.error:.1e}"


# -- polynomial maps ------------------------------------------------------------------------------
def polynomial_degree(kmap) -> Optional[int]:
    """Degree d of φ when φ is a polynomial in x (identity: 1), else None."""
    import sympy
    from ...rules.nonlinearities import x
    phi = sympy.sympify(kmap.phi)
    if not phi.is_polynomial(x):
        return None
    return max(int(sympy.degree(phi, x)), 1) if phi.has(x) else 1


def exact_grid(degree: int, band: int, band_out: int) -> int:
    """Smallest B ≥ L with d·(L−1) + L' ≤ 2B: the next layer's quadrature is then exact."""
    return max(band, -(-(degree * (band - 1) + band_out) // 2))


# -- the aliasing estimate ------------------------------------------------------------------------
def _probe_rho(kind: str, band: int, cos_beta):
    from scipy.special import eval_legendre
    c = {"flat": np.ones(band), "2l+1": 2.0 * np.arange(band) + 1.0,
         "top": np.eye(band)[-1]}[kind]
    c = c / c.sum()
    return sum(cl * eval_legendre(l, cos_beta) for l, cl in enumerate(c) if cl)


def _probe_terms(maps, rho):
    """(NNGP, NTK) of the probe at unit variance after the chain of ``maps``: K = ρ, Θ = K."""
    one = np.ones_like(rho)
    k11, k12, t12 = one, rho, rho
    for kmap in maps:
        v, _ = kmap.evaluate(k11, k11, k11)  # the variance K(x,x) after the map
        k12_new, kdot = kmap.evaluate(k11, k12, k11)
        k11, k12, t12 = v, k12_new, kdot * t12
    return k12, t12


@functools.lru_cache(maxsize=None)
def _nodes():
    """cos β and weights of the reference (Gauss–Legendre in β, ½ sin β dβ) and of every DH
    grid B = 1..MAX_BANDWIDTH, concatenated after β = 0 (the value at correlation 1), so each
    map is evaluated once for all grids (KernelMap.evaluate prints the map on every call)."""
    from scipy.special import roots_legendre  # O(n) nodes (numpy's leggauss is an n×n eigh)
    t, w = roots_legendre(_REFERENCE_NODES)
    beta = (t + 1) * np.pi / 2
    parts = [(np.zeros(1), np.ones(1)), (beta, w * np.pi / 4 * np.sin(beta))]
    parts += [(grid_angles(b)[0], dh_weights(b)) for b in range(1, MAX_BANDWIDTH + 1)]
    bounds = np.cumsum([0] + [len(p[0]) for p in parts])
    return (np.cos(np.concatenate([p[0] for p in parts])),
            np.concatenate([p[1] for p in parts]), bounds)


@functools.lru_cache(maxsize=None)
def _errors(maps, band, band_out):
    """e(B) of the module docstring for B = 0..MAX_BANDWIDTH (index B; e(0) unused)."""
    from scipy.special import eval_legendre
    cos_beta, weights, bounds = _nodes()
    legendre = np.stack([(2 * l + 1) * eval_legendre(l, cos_beta) for l in range(band_out)])
    out = np.zeros(MAX_BANDWIDTH + 1)
    for probe in _PROBES:
        for h in _probe_terms(maps, _probe_rho(probe, band, cos_beta)):
            scale = max(abs(float(h[0])), 1e-300)  # h at β = 0: correlation 1
            weighted = legendre * (weights * h)
            coeffs = np.stack([weighted[:, bounds[i]:bounds[i + 1]].sum(axis=1)
                               for i in range(1, len(bounds) - 1)])  # reference, B = 1, 2, ...
            err = np.abs(coeffs[1:] - coeffs[0]).sum(axis=1) / scale
            out[1:] = np.maximum(out[1:], err)
    return out


def aliasing_error(maps: Tuple, band: int, band_out: int, bandwidth: int) -> float:
    """e(B) of the module docstring: the estimated error of the layer after the chain of
    kernel ``maps`` (KernelMap values) applied to a band-``band`` K̃ sampled at bandwidth B."""
    if not 1 <= bandwidth <= MAX_BANDWIDTH:
        raise ValueError(f"bandwidth {bandwidth} outside 1..{MAX_BANDWIDTH}")
    return float(_errors(tuple(maps), band, band_out)[bandwidth])


# -- the plan over a layer graph ------------------------------------------------------------------
def _band_of(hp, band_in):
    return hp.get("bandlimit") or band_in


def _downstream(layers, node, bands):
    """[(maps, band read)] for every path from ``node`` to the next SO(3) consumer: the
    kernel maps on the way (a nonlinearity right after another one is composed with it,
    kernelc.rules.nonlinearities.compose, as φ₂∘φ₁ acts on the Gaussian pre-activation) and
    the band the consumer reads (a gconv's L', 1 for group_pool and the output)."""
    from ...rules.nonlinearities import compose
    chains = []
    stack = [(s, ()) for s in layers.successors(node)]
    while stack:
        n, maps = stack.pop()
        data = layers.node(n)
        kind = data["kind"]
        if kind == "nonlinearity":
            kmap = data["hp"]["map"]
            maps = maps[:-1] + (compose(kmap, maps[-1]),) if maps else (kmap,)
            stack.extend((s, maps) for s in layers.successors(n))
        elif kind in _CONSUMERS:
            chains.append((maps, 1 if kind == "group_pool" else bands[n]))
        else:  # structural nodes (fan-out, identity, sum): follow them
            succ = layers.successors(n)
            if not succ:  # the output: no quadrature reads this signal
                chains.append((maps, 1))
            stack.extend((s, maps) for s in succ)
    return chains


def plan_grids(layers, tol_default: float = DEFAULT_TOL) -> Dict[str, Dict]:
    """``{node: {"grid": B, "tol": tol, "grid_choice": GridChoice}}`` for every lift/gconv of a
    layer graph (:mod:`kernelc.frontend.graph`): the defaults of this module; a layer's
    ``grid=`` is kept. ``tol`` is the smallest ``tol=`` any layer gives (it bounds the whole
    network's kernel), else ``tol_default``."""
    order = layers.order()
    band = getattr(layers.spec.input, "bandlimit", None)
    if not isinstance(band, int):  # not a sphere input: refused by the typing of the input
        return {}
    bands = {}
    for n in order:  # the band limit of every lift/gconv (as kinds._bands types it)
        data = layers.node(n)
        if data["kind"] in ("lift", "gconv"):
            band = _band_of(data["hp"], band)
            if band > MAX_BANDWIDTH:
                return {}  # refused by the typing rule (kinds._bands), with its message
            bands[n] = band
    weighted = [n for n in order if n in bands]
    if not weighted:
        return {}
    tols = [layers.node(n)["hp"].get("tol") for n in weighted]
    tol = min([t for t in tols if t is not None], default=tol_default)
    exact, inexact, given = {}, {}, {}
    for n in weighted:
        hp = layers.node(n)["hp"]
        L = bands[n]
        chains = _downstream(layers, n, bands)
        degrees = []
        for maps, band_out in chains:
            d = 1
            for kmap in maps:
                dm = polynomial_degree(kmap)
                d = None if (d is None or dm is None) else d * dm
            degrees.append((d, band_out, maps))
        if hp.get("grid") is not None:
            given[n] = (hp["grid"], degrees)
        elif all(d is not None for d, _, _ in degrees) and max(
                [exact_grid(d, L, lo) for d, lo, _ in degrees] + [L]) <= MAX_BANDWIDTH:
            exact[n] = (max([exact_grid(d, L, lo) for d, lo, _ in degrees] + [L]), degrees)
        else:  # not polynomial, or no exact grid within the tables: estimated
            inexact[n] = degrees

    def error(n, B, degrees):
        """The layer's estimate at bandwidth B: 0 where exact, else the probe's."""
        out = 0.0
        for d, band_out, maps in degrees:
            if d is not None and exact_grid(d, bands[n], band_out) <= B:
                continue
            # a grid above the tables is refused by the typing rule (kinds._bands)
            out = max(out, aliasing_error(tuple(maps), bands[n], band_out,
                                          min(B, MAX_BANDWIDTH)))
        return out

    grids = {n: bands[n] for n in inexact}
    errors = {n: error(n, grids[n], inexact[n]) for n in inexact}
    fixed = sum(error(n, B, degrees) for n, (B, degrees) in given.items())
    # a given grid is the user's choice: the others are chosen for tol on their own (the
    # network's total, given grids included, is what explain shows)
    while inexact and SAFETY * sum(errors.values()) > tol:
        best, gain = None, -1.0
        for n in inexact:
            if grids[n] >= MAX_BANDWIDTH:
                continue
            B = grids[n] + 1
            e = error(n, B, inexact[n])
            added = (2 * B) ** 3 - (2 * grids[n]) ** 3
            if (errors[n] - e) / added > gain:
                best, gain, best_e = n, (errors[n] - e) / added, e
        if best is None:
            worst = max(errors, key=errors.get)
            raise SpecError(
                f"no grid up to bandwidth {MAX_BANDWIDTH} brings the estimated aliasing error "
                f"of '{layers.node(worst)['name']}' and the layers after it to tol={tol:g} "
                f"(estimate {sum(errors.values()):.1e}, ×{SAFETY:g} margin); give a larger "
                f"tol= or an "
                f"explicit grid=", layers.node(worst)["span"])
        grids[best], errors[best] = grids[best] + 1, best_e

    total = fixed + sum(errors.values())
    out = {}
    for n in weighted:
        L = bands[n]
        if n in given:
            B, degrees = given[n]
            e = error(n, B, degrees)
            why = (f"given (grid={B}); " + ("exact: every quadrature after it is of a "
                                           "band-limited integrand" if e == 0 else
                                           f"aliasing estimate {e:.1e}"))
            choice = GridChoice(B, L, "given", e, tol, why)
        elif n in exact:
            B, degrees = exact[n]
            conds = "; ".join(f"{d}·({L}−1) + {lo} ≤ 2B" for d, lo, _ in degrees) or "B ≥ L"
            choice = GridChoice(B, L, "exact", 0.0, tol,
                                f"exact (polynomial φ after it: {conds}, the smallest such B)")
        else:
            B = grids[n]
            network = (f"network {total:.1e}, ×{SAFETY:g} ≤ tol {tol:g}"
                       if SAFETY * total <= tol else
                       f"network {total:.1e}: {total - fixed:.1e} ×{SAFETY:g} ≤ tol {tol:g} "
                       f"plus the layers with grid= given")
            choice = GridChoice(B, L, "estimate", errors[n], tol,
                                f"aliasing estimate {errors[n]:.1e} for this layer ({network}; "
                                f"zonal self-pair probe, docs/so3.md)")
        out[n] = {"grid": B, "tol": tol, "grid_choice": choice}
    return out
