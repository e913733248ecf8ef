"""A slow, independent reference implementation of docs/math/rules.md for lattice groups H ⋉ Z^d.

It shares no code with kernelc (kernelc is never imported here) and is meant for tiny inputs in
tests only. Everything is written out from the conventions of docs/math/conventions.md:

* The point group H is built here from its generator matrices by a breadth-first closure
  (:func:`group_closure`, own element order: identity first, then left multiplication by the
  generators), products are plain integer matrix products.
* Kernels are dense numpy float64 arrays over explicit index pairs. All inputs x1 ∪ x2 are
  propagated together: a kernel on a spatial domain is an array ``K[n, i, m, j]`` where n, m
  run over the N = N1 + N2 inputs and i, j over the flattened domain points. A domain point is
  a site t of the current box (only the sites of the hexagon on a hexagonal lattice) paired with
  an element r of H (``i = site_index * |H| + element_index``; H = {e} for signals on the box).
  A kernel on invariant vectors is ``K[n, m]``.
* Weight layers loop explicitly (Python loops) over the filter offsets y ∈ S and the rotational
  elements s ∈ R; the sum over all pairs (g, g') of each term is one numpy gather with an index
  array (g ↦ gh, or −1 for a zero-padded point).
* Nonlinearities act on a Gaussian pre-activation: consecutive nonlinearities are integrated as
  one composed φ against the last Gaussian state (Gauss–Hermite, :func:`composed_maps`), and
  after a concatenation each block (its own kernel) gets the map separately.
* Nonlinearities: closed forms written out here for relu / leaky_relu / abs (arc-cosine kernel,
  Cho & Saul), erf (Williams) and identity; every other φ (gelu, sin, cos, tanh, swish
  x·sigmoid(x), polynomials, or a user pair (φ, φ')) by 2-d Gauss–Hermite quadrature with
  ``QUAD_POINTS`` ≥ 60 nodes per axis (physicists' nodes of ``numpy.polynomial.hermite``,
  Cholesky factor of Λ), for both E[φ(u)φ(v)] and E[φ'(u)φ'(v)].

Layers are plain dicts (``kind`` plus hyperparameters, the defaults of the spec language):

    {"kind": "lift",  "size": 3, "W_std": 1.0, "b_std": 0.0, "padding": "same"}   # X -> G
    {"kind": "conv",  ...same keys...}                                             # X -> X
    {"kind": "gconv", ...same keys..., "rotations": None | [matrix, ...]}          # G -> G
    {"kind": "relu"} {"kind": "erf"} {"kind": "leaky_relu", "slope": 0.2} {"kind": "gelu"}
    {"kind": "poly", "coeffs": [c0, c1, ...]} {"kind": "quad", "phi": f, "dphi": df} ...
    {"kind": "group_pool"} {"kind": "flatten"} {"kind": "avg_pool"}
    {"kind": "avg_pool", "size": 2, "stride": 2}           # windowed mean (stride: default size)
    {"kind": "dense", "W_std": 1.0, "b_std": 0.0}
    {"kind": "residual", "body": [layers]}                  # body + identity shortcut
    {"kind": "residual", "branches": [[layers], [layers]]}  # sum of branches ([] = identity)
    {"kind": "concat", "branches": [[layers], [layers]]}    # mean of branches (equal widths)

A weight layer may also give ``"support": [offset, ...]`` instead of ``size`` and, for the
standard parameterisation, ``"width"`` (its channel count). ``rotations`` lists matrices of H
(None: all of H).

Conventions (docs/math/conventions.md): NTK parameterisation (or ``parameterization="standard"``: Θ⁺ = σ_w²Θ_lin
+ fan_in·K_lin + [σ_b > 0]); K0[x,x'] = (1/C) Σ_c f_c(x) f'_c(x'), Θ0 = 0; g = (t, r),
(t,r)(y,s) = (t+ρ(r)y, rs), (t,r)·y = t+ρ(r)y; zero padding outside the box ('same'), wrapped
indices ('circular'), or only sites whose whole stencil is inside ('valid': output site t sits
at input coordinate t + lo, lo = −min(S) per axis). On the hexagonal lattice the domain of an
odd n×n box is the inscribed hexagon in axial coordinates (a, b) = x − c, |a|,|b|,|a+b| ≤ (n−1)/2;
sites outside it do not exist (signal zero there, not counted by pooling means).
"""
from __future__ import annotations

import itertools
import math
from collections import deque

import numpy as np

QUAD_POINTS = 80  # Gauss–Hermite nodes per axis for φ without a closed form (≥ 60)

__all__ = ["group_closure", "hex_domain_sites", "filter_support", "transform_signal",
           "reference_kernels", "reference_feature_kernels", "gauss_hermite_expectations",
           "nonlinearity_maps", "composed_maps", "phi_pair", "QUAD_POINTS"]


# ----------------------------------------------------------------------------------- groups
def group_closure(generators, dim):
    """All products of the generator matrices: a list of (d, d) int arrays, identity first,
    then breadth-first by left multiplication with each generator."""
    ident = np.eye(dim, dtype=np.int64)
    gens = [np.array(gm, dtype=np.int64).reshape(dim, dim) for gm in generators]
    seen = {tuple(ident.ravel())}
    out = [ident]
    queue = deque([ident])
    while queue:
        a = queue.popleft()
        for s in gens:
            b = s @ a
            key = tuple(b.ravel())
            if key not in seen:
                if len(out) > 10000:
                    raise ValueError("generators do not generate a finite group")
                seen.add(key)
                out.append(b)
                queue.append(b)
    return out


def _element_index(elements):
    return {tuple(np.asarray(e).ravel()): i for i, e in enumerate(elements)}


# ----------------------------------------------------------------------------------- domains
def hex_domain_sites(n):
    """Array coordinates (i, j) of the hexagon inscribed in the odd n×n box, C order."""
    if n % 2 == 0:
        raise ValueError("a hexagonal domain needs an odd box side")
    c = (n - 1) // 2
    return [(i, j) for i in range(n) for j in range(n)
            if abs(i - c) <= c and abs(j - c) <= c and abs(i - c + j - c) <= c]


def _domain_sites(box, lattice):
    if lattice == "hexagonal":
        if len(box) != 2 or box[0] != box[1]:
            raise ValueError("hexagonal domains live in square 2-d boxes")
        return hex_domain_sites(box[0])
    return list(itertools.product(*(range(n) for n in box)))


def filter_support(size, dim, lattice):
    """Centred filter offsets: the k^d box (k odd) on the square lattice, the hexagonal ball
    {(a,b): |a|,|b|,|a+b| ≤ (k−1)/2} on the hexagonal one."""
    if size % 2 == 0:
        raise ValueError("the reference supports odd filter sizes only")
    r = (size - 1) // 2
    if lattice == "hexagonal":
        return [(a, b) for a in range(-r, r + 1) for b in range(-r, r + 1) if abs(a + b) <= r]
    return list(itertools.product(range(-r, r + 1), repeat=dim))


def transform_signal(x, matrix, lattice="square"):
    """(ρ(h)f)(x) = f(ρ(h)⁻¹x) for x of shape (N, *box, C), rotating about the box centre:
    the value at site p moves to ρ(h)(p − c) + c (doubled coordinates for even sides).
    On the hexagonal lattice sites outside the hexagon are set to zero."""
    x = np.asarray(x, dtype=np.float64)
    box = x.shape[1:-1]
    m = np.asarray(matrix, dtype=np.int64)
    out = np.zeros_like(x)
    sites = _domain_sites(box, lattice)
    n = np.array(box)
    for p in sites:
        u = 2 * np.array(p) - (n - 1)
        q = (m @ u + (n - 1))
        if np.any(q % 2) or np.any(q < 0) or np.any(q > 2 * (n - 1)):
            raise ValueError("the box is not invariant under this element")
        q = tuple(int(v) for v in q // 2)
        out[(slice(None),) + q] = x[(slice(None),) + tuple(p)]
    return out


class _Space:
    """A spatial signal domain: the sites of a box (hexagon) times a list of elements."""

    def __init__(self, box, lattice, elements, on_group):
        self.box = tuple(int(b) for b in box)
        self.lattice = lattice
        self.elements = elements
        self.on_group = on_group
        self.sites = _domain_sites(self.box, lattice)
        self.site_index = {s: i for i, s in enumerate(self.sites)}
        self.nel = len(elements)

    @property
    def size(self):
        return len(self.sites) * self.nel

    def flat(self, site_i, el_i):
        return site_i * self.nel + el_i

    def locate(self, coord, padding):
        """Site index of an input coordinate, or −1 where the signal is zero (padding)."""
        if padding == "circular":
            coord = tuple(int(c) % n for c, n in zip(coord, self.box))
        return self.site_index.get(tuple(int(c) for c in coord), -1)


class _State:
    """Kernels of the current layer for all N inputs jointly (see the module docstring)."""

    def __init__(self, space, K, T, channels, pre=None, blocks=None):
        self.space = space  # None for invariant vectors
        self.K = K
        self.T = T  # None means Θ = 0
        self.channels = channels
        # after nonlinearities: (Gaussian state before the first of them, [their layer dicts]);
        # the next nonlinearity integrates the composition against that Gaussian
        self.pre = pre
        # after a concatenation: [(channel fraction, state of the block)], each block Gaussian
        # with its own kernel; a nonlinearity acts on each block separately
        self.blocks = blocks


# ----------------------------------------------------------------------------- weight layers
def _padded(K):
    """K with one extra zero point appended on both domain axes (the target of index −1)."""
    N, D = K.shape[0], K.shape[1]
    Kp = np.zeros((N, D + 1, N, D + 1))
    Kp[:, :D, :, :D] = K
    return Kp


def _gather(Kp, idx):
    """K[n, idx[i], m, idx[j]] from a padded kernel; idx = −1 gives a zero entry."""
    idx = np.asarray(idx)
    idx = np.where(idx < 0, Kp.shape[1] - 1, idx)
    return Kp.take(idx, axis=1).take(idx, axis=3)


def _support_of(layer, dim, lattice):
    if layer.get("support") is not None:
        return [tuple(int(c) for c in y) for y in layer["support"]]
    return filter_support(layer.get("size", 3), dim, lattice)


def _out_space(space, support, padding, elements, on_group):
    d = len(space.box)
    if padding == "valid":
        if space.lattice == "hexagonal":
            raise ValueError("valid padding is not defined on a hexagonal domain")
        lo = [-min(y[a] for y in support) for a in range(d)]
        ext = [max(y[a] for y in support) - min(y[a] for y in support) for a in range(d)]
        box = tuple(n - e for n, e in zip(space.box, ext))
        shift = lo
    else:
        if padding == "circular" and space.lattice == "hexagonal":
            raise ValueError("circular padding is not defined on a hexagonal domain")
        box, shift = space.box, [0] * d
    return _Space(box, space.lattice, elements, on_group), shift


def _std_ntk(layer, parameterization, K_lin, T_lin, K_new, fan_in):
    w2 = layer.get("W_std", 1.0) ** 2
    if parameterization == "ntk":
        rest = K_new
    else:
        if fan_in is None:
            raise ValueError("the standard parameterisation needs the widths of all layers")
        rest = fan_in * K_lin + (1.0 if layer.get("b_std", 0.0) > 0 else 0.0)
    return rest if T_lin is None else w2 * T_lin + rest


def _lift(state, layer, elements, parameterization, on_group_out=True):
    """K⁺[(t,r),(t',r')] = σ_w²/|S| Σ_{y∈S} K0[t+ρ(r)y, t'+ρ(r')y] + σ_b²  (conv: H = {e})."""
    src = state.space
    d = len(src.box)
    support = _support_of(layer, d, src.lattice)
    padding = layer.get("padding", "same")
    out, shift = _out_space(src, support, padding, elements, on_group_out)
    K_lin = np.zeros((state.K.shape[0], out.size, state.K.shape[0], out.size))
    T_lin = None if state.T is None else np.zeros_like(K_lin)
    Kp = _padded(state.K)
    Tp = None if state.T is None else _padded(state.T)
    for y in support:  # explicit loop over the filter offsets
        idx = np.empty(out.size, dtype=np.int64)
        for ti, t in enumerate(out.sites):
            for ri, r in enumerate(elements):
                ry = r @ np.array(y)
                coord = tuple(t[a] + shift[a] + ry[a] for a in range(d))
                idx[out.flat(ti, ri)] = src.locate(coord, padding)  # input has one element
        K_lin += _gather(Kp, idx)
        if T_lin is not None:
            T_lin += _gather(Tp, idx)
    K_lin /= len(support)
    if T_lin is not None:
        T_lin /= len(support)
    w2, b2 = layer.get("W_std", 1.0) ** 2, layer.get("b_std", 0.0) ** 2
    K_new = w2 * K_lin + b2
    fan_in = None if state.channels is None else state.channels * len(support)
    T_new = _std_ntk(layer, parameterization, K_lin, T_lin, K_new, fan_in)
    return _State(out, K_new, T_new, layer.get("width"))


def _gconv(state, layer, parameterization, direct=None):
    """K⁺[g,g'] = σ_w²/|S_G| Σ_{h=(y,s)∈S_G} K[gh, g'h] + σ_b², gh = (t+ρ(r)y, rs).

    ``direct=True`` gathers every one of the |S||R| terms (y, s) separately. ``direct=False``
    regroups the same finite sum as Σ_y [Σ_s K[(u, rs), (u', r's)]] at u = t+ρ(r)y (the site of
    gh does not depend on s, its element does not depend on y): |S| + |R| gathers instead of
    |S|·|R|. Default: direct when that costs under ~3·10⁷ gathered entries.
    """
    src = state.space
    if not src.on_group:
        raise ValueError("gconv needs a signal on G (start with a lift)")
    elements = src.elements
    d = len(src.box)
    index = _element_index(elements)
    prod = [[index[tuple((a @ b).ravel())] for b in elements] for a in elements]
    support = _support_of(layer, d, src.lattice)
    rots = layer.get("rotations")
    R = list(range(len(elements))) if rots is None else \
        [index[tuple(np.asarray(m, dtype=np.int64).ravel())] for m in rots]
    padding = layer.get("padding", "same")
    out, shift = _out_space(src, support, padding, elements, True)
    N = state.K.shape[0]
    if direct is None:
        direct = len(support) * len(R) * (N * out.size) ** 2 < 3e7
    K_lin = np.zeros((N, out.size, N, out.size))
    T_lin = None if state.T is None else np.zeros_like(K_lin)

    def site_idx(y):
        """For each output g = (t, r): the input site index of t + ρ(r)y (or −1)."""
        idx = np.empty((len(out.sites), len(elements)), dtype=np.int64)
        for ti, t in enumerate(out.sites):
            for ri, r in enumerate(elements):
                ry = r @ np.array(y)
                idx[ti, ri] = src.locate(tuple(t[a] + shift[a] + ry[a] for a in range(d)),
                                         padding)
        return idx

    if direct:
        Kp = _padded(state.K)
        Tp = None if state.T is None else _padded(state.T)
        for y in support:  # explicit loops over h = (y, s) ∈ S_G
            sidx = site_idx(y)
            for s in R:
                idx = np.empty(out.size, dtype=np.int64)
                for ti in range(len(out.sites)):
                    for ri in range(len(elements)):
                        si = sidx[ti, ri]
                        idx[out.flat(ti, ri)] = -1 if si < 0 else src.flat(si, prod[ri][s])
                K_lin += _gather(Kp, idx)
                if T_lin is not None:
                    T_lin += _gather(Tp, idx)
    else:
        def mix(K):  # B[(u,r),(u',r')] = Σ_{s∈R} K[(u, rs), (u', r's)] on the input domain
            B = np.zeros_like(K)
            Kp = _padded(K)
            for s in R:
                idx = np.array([src.flat(ui, prod[ri][s]) for ui in range(len(src.sites))
                                for ri in range(len(elements))])
                B += _gather(Kp, idx)
            return _padded(B)
        B = mix(state.K)
        TB = None if state.T is None else mix(state.T)
        for y in support:
            sidx = site_idx(y)
            idx = np.empty(out.size, dtype=np.int64)
            for ti in range(len(out.sites)):
                for ri in range(len(elements)):
                    si = sidx[ti, ri]
                    idx[out.flat(ti, ri)] = -1 if si < 0 else src.flat(si, ri)
            K_lin += _gather(B, idx)
            if T_lin is not None:
                T_lin += _gather(TB, idx)
    n_terms = len(support) * len(R)
    K_lin /= n_terms
    if T_lin is not None:
        T_lin /= n_terms
    w2, b2 = layer.get("W_std", 1.0) ** 2, layer.get("b_std", 0.0) ** 2
    K_new = w2 * K_lin + b2
    fan_in = None if state.channels is None else state.channels * n_terms
    T_new = _std_ntk(layer, parameterization, K_lin, T_lin, K_new, fan_in)
    return _State(out, K_new, T_new, layer.get("width"))


def _dense(state, layer, parameterization):
    """K⁺ = σ_w² K + σ_b², Θ⁺ = σ_w² Θ + K⁺ (NTK parameterisation)."""
    if state.space is not None:
        raise ValueError("dense needs an invariant vector (group_pool or flatten first)")
    w2, b2 = layer.get("W_std", 1.0) ** 2, layer.get("b_std", 0.0) ** 2
    K_new = w2 * state.K + b2
    T_new = _std_ntk(layer, parameterization, state.K, state.T, K_new, state.channels)
    return _State(None, K_new, T_new, layer.get("width", 1))


# ------------------------------------------------------------------------- nonlinearities
def _relu_maps(k11, k12, k22):
    """Arc-cosine kernel of degree 1 and its derivative (degree 0), θ = arccos ρ:
    K = √(k11k22)(sin θ + (π−θ) cos θ)/(2π),  K̇ = (π − θ)/(2π)."""
    s = np.sqrt(k11 * k22)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.clip(np.where(s > 0, k12 / np.where(s > 0, s, 1.0), 0.0), -1.0, 1.0)
    theta = np.arccos(rho)
    K = s * (np.sin(theta) + (np.pi - theta) * np.cos(theta)) / (2 * np.pi)
    Kd = (np.pi - theta) / (2 * np.pi)
    return K, Kd


def _erf_maps(k11, k12, k22):
    """Williams: K = (2/π) asin(2k12/√((1+2k11)(1+2k22))),
    K̇ = (4/π) / √((1+2k11)(1+2k22) − 4k12²)."""
    den = (1 + 2 * k11) * (1 + 2 * k22)
    K = 2 / np.pi * np.arcsin(np.clip(2 * k12 / np.sqrt(den), -1.0, 1.0))
    Kd = 4 / np.pi / np.sqrt(den - 4 * k12 ** 2)
    return K, Kd


def _leaky_maps(a):
    """φ = max(x, a x) = m x + c relu(x): K = (m² + mc) k12 + c² K_relu, K̇ = m² + mc + c² K̇_relu."""
    m, c = (a, 1 - a) if a <= 1 else (1.0, a - 1)

    def maps(k11, k12, k22):
        K, Kd = _relu_maps(k11, k12, k22)
        return (m * m + m * c) * k12 + c * c * K, (m * m + m * c) + c * c * Kd
    return maps


def _abs_maps(k11, k12, k22):
    """φ = |x| = 2 relu(x) − x: K = 4 K_relu − k12, K̇ = 4 K̇_relu − 1."""
    K, Kd = _relu_maps(k11, k12, k22)
    return 4 * K - k12, 4 * Kd - 1


def _identity_maps(k11, k12, k22):
    return np.array(k12, dtype=np.float64), np.ones_like(k12, dtype=np.float64)


try:  # scipy's vectorised erf when it is installed (it is not a kernelc dependency)
    from scipy.special import erf as _erf_scalar
except ImportError:  # pragma: no cover
    def _erf_scalar(v):
        return np.vectorize(math.erf, otypes=[np.float64])(v)


def _sigmoid(v):
    return 0.5 * (1 + np.tanh(v / 2))


def _gelu(v):
    return v * 0.5 * (1 + _erf_scalar(v / math.sqrt(2)))


def _dgelu(v):
    return 0.5 * (1 + _erf_scalar(v / math.sqrt(2))) + v * np.exp(-v * v / 2) / math.sqrt(2 * math.pi)


_QUAD_PHIS = {
    "gelu": (_gelu, _dgelu),
    "sin": (np.sin, np.cos),
    "cos": (np.cos, lambda v: -np.sin(v)),
    "tanh": (np.tanh, lambda v: 1 - np.tanh(v) ** 2),
    "swish": (lambda v: v * _sigmoid(v), lambda v: _sigmoid(v) * (1 + v * (1 - _sigmoid(v)))),
}


def gauss_hermite_expectations(phi, dphi, k11, k12, k22, n=None):
    """E[φ(u)φ(v)] and E[φ'(u)φ'(v)], (u, v) ~ N(0, [[k11, k12], [k12, k22]]), elementwise, by
    an n×n Gauss–Hermite rule (physicists' nodes x_i, weights w_i; z = √2 x):
    u = √k11 z1, v = √k22 (ρ z1 + √(1−ρ²) z2), E ≈ (1/π) Σ_ij w_i w_j φ(u_i) φ(v_ij)."""
    n = QUAD_POINTS if n is None else n
    if n < 60:
        raise ValueError("the reference uses at least 60 Gauss–Hermite points")
    xs, ws = np.polynomial.hermite.hermgauss(n)
    z = np.sqrt(2.0) * xs
    w = ws / np.sqrt(np.pi)
    k11, k12, k22 = (np.asarray(a, dtype=np.float64) for a in np.broadcast_arrays(k11, k12, k22))
    s1, s2 = np.sqrt(k11), np.sqrt(k22)
    # ρ = k12/s and √(1−ρ²) = √((s−k12)(s+k12))/s with s = √(k11 k22): a variance pair
    # (k12 = k11 = k22) gets ρ = 1, √(1−ρ²) = 0 exactly (√(fl(a·a)) = a in IEEE arithmetic),
    # where s1·s2 one ulp off would leave √(1−ρ²) ≈ 1e-8
    s = np.sqrt(k11 * k22)
    with np.errstate(invalid="ignore", divide="ignore"):
        safe = np.where(s > 0, s, 1.0)
        rho = np.clip(np.where(s > 0, k12 / safe, 0.0), -1.0, 1.0)
        rc = np.where(s > 0, np.sqrt(np.maximum((s - k12) * (s + k12), 0.0)) / safe, 1.0)
    rc = np.minimum(rc, 1.0)
    K = np.zeros(k11.shape)
    Kd = np.zeros(k11.shape)
    for zi, wi in zip(z, w):  # explicit loop over the outer nodes
        u = s1 * zi
        v = s2[..., None] * (rho[..., None] * zi + rc[..., None] * z)
        K += wi * phi(u) * (phi(v) @ w)
        Kd += wi * dphi(u) * (dphi(v) @ w)
    return K, Kd


def nonlinearity_maps(layer):
    """(k11, k12, k22) -> (K⁺, K̇) for a nonlinearity layer dict."""
    kind = layer["kind"]
    if kind == "relu":
        return _relu_maps
    if kind == "erf":
        return _erf_maps
    if kind == "abs":
        return _abs_maps
    if kind == "identity":
        return _identity_maps
    if kind == "leaky_relu":
        return _leaky_maps(float(layer.get("slope", 0.01)))
    if kind == "poly":
        coeffs = [float(c) for c in layer["coeffs"]]
        phi = lambda v: sum(c * v ** i for i, c in enumerate(coeffs))  # noqa: E731
        dphi = lambda v: sum(i * c * v ** (i - 1) for i, c in enumerate(coeffs) if i)  # noqa: E731
        return lambda a, b, c: gauss_hermite_expectations(phi, lambda v: dphi(v) + 0 * v, a, b, c,
                                                          layer.get("points"))
    if kind == "quad":
        return lambda a, b, c: gauss_hermite_expectations(layer["phi"], layer["dphi"], a, b, c,
                                                          layer.get("points"))
    if kind in _QUAD_PHIS:
        phi, dphi = _QUAD_PHIS[kind]
        return lambda a, b, c: gauss_hermite_expectations(phi, dphi, a, b, c, layer.get("points"))
    raise ValueError(f"unknown layer kind {kind!r}")


def _erf_prime(v):
    return 2 / math.sqrt(math.pi) * np.exp(-v * v)


def phi_pair(layer):
    """(φ, φ') of a nonlinearity layer dict as numpy functions (for compositions)."""
    kind = layer["kind"]
    if kind == "relu":
        return (lambda v: np.maximum(v, 0.0)), (lambda v: (v > 0).astype(np.float64))
    if kind == "abs":
        return np.abs, (lambda v: np.sign(v).astype(np.float64))
    if kind == "identity":
        return (lambda v: v), (lambda v: np.ones_like(v))
    if kind == "erf":
        return _erf_scalar, _erf_prime
    if kind == "leaky_relu":
        a = float(layer.get("slope", 0.01))
        return (lambda v: np.maximum(v, a * v)), \
            (lambda v: np.where(v > a * v, 1.0, a) + 0 * v)
    if kind == "poly":
        coeffs = [float(c) for c in layer["coeffs"]]
        return (lambda v: sum(c * v ** i for i, c in enumerate(coeffs)) + 0 * v), \
            (lambda v: sum(i * c * v ** (i - 1) for i, c in enumerate(coeffs) if i) + 0 * v)
    if kind == "quad":
        return layer["phi"], layer["dphi"]
    if kind in _QUAD_PHIS:
        return _QUAD_PHIS[kind]
    raise ValueError(f"unknown layer kind {kind!r}")


def composed_maps(chain, points=None):
    """(k11, k12, k22) -> (K⁺, K̇) of φ_k∘…∘φ_1 for the layer dicts ``chain`` = [φ_1, ..., φ_k]:
    a single φ uses :func:`nonlinearity_maps`; a composition Gauss–Hermite quadrature of
    E[Φ(u)Φ(v)] and E[Φ'(u)Φ'(v)] with Φ = φ_k∘…∘φ_1 and Φ' by the chain rule."""
    if len(chain) == 1:
        return nonlinearity_maps(chain[0])
    pairs = [phi_pair(layer) for layer in chain]

    def phi(v):
        for f, _ in pairs:
            v = f(v)
        return v

    def dphi(v):
        d = np.ones_like(v)
        for f, df in pairs:
            d = d * df(v)
            v = f(v)
        return d
    return lambda a, b, c: gauss_hermite_expectations(phi, dphi, a, b, c, points)


def _nonlinearity(state, layer):
    """A nonlinearity: per block after a concatenation; composed with the nonlinearities just
    before it (their output is not Gaussian), else the map of φ alone."""
    if state.blocks is not None:
        blocks = [(w, _nonlinearity(b, layer)) for w, b in state.blocks]
        out = _combine([b for _, b in blocks], [w for w, _ in blocks])
        out.blocks = blocks
        return out
    base, chain = state.pre if state.pre is not None else (state, [])
    chain = chain + [layer]
    out = _gaussian_map(base, composed_maps(chain, layer.get("points")))
    out.pre = (base, chain)
    return out


def _gaussian_map(state, maps):
    """K⁺ = E[φ(u)φ(v)], Θ⁺ = E[φ'(u)φ'(v)] Θ, Λ from K[g,g](f,f), K[g',g'](f',f'), K[g,g'](f,f').

    The joint kernel is symmetric under swapping its two (input, point) indices, so the maps are
    evaluated on the upper triangle and mirrored."""
    K = state.K
    shape = K.shape
    M = K.reshape(int(np.prod(shape[:len(shape) // 2])), -1)
    var = np.diagonal(M).copy()  # K[(n,g),(n,g)]
    i, j = np.triu_indices(M.shape[0])
    k_up, kd_up = maps(var[i], M[i, j], var[j])
    K_new = np.empty_like(M)
    Kd = np.empty_like(M)
    K_new[i, j], K_new[j, i] = k_up, k_up
    Kd[i, j], Kd[j, i] = kd_up, kd_up
    T_new = None if state.T is None else Kd.reshape(shape) * state.T
    return _State(state.space, K_new.reshape(shape), T_new, state.channels)


# ------------------------------------------------------------------------------- pooling
def _group_pool(state):
    """K⁺(f, f') = mean over all domain points g, g' of K[g, g']."""
    if state.space is None or not state.space.on_group:
        raise ValueError("group_pool needs a signal on G")
    K = state.K.mean(axis=(1, 3))
    T = None if state.T is None else state.T.mean(axis=(1, 3))
    return _State(None, K, T, state.channels)


def _flatten(state):
    """K⁺(f, f') = mean over domain points g of K[g, g]."""
    if state.space is None:
        raise ValueError("flatten needs a spatial signal")
    K = np.einsum("nimi->nm", state.K) / state.K.shape[1]
    T = None if state.T is None else np.einsum("nimi->nm", state.T) / state.T.shape[1]
    ch = None if state.channels is None else state.channels * state.space.size
    return _State(None, K, T, ch)


def _window_pool(state, size, stride):
    """K⁺[(u,h),(u',h')] = (1/size^{2d}) Σ_{a,b ∈ {0..size−1}^d} K[(stride·u+a, h),
    (stride·u'+b, h')] over the valid windows (no padding): floor((n − size)/stride) + 1 sites
    per axis. Written out with explicit loops over output site pairs, element pairs and window
    offsets."""
    sp = state.space
    if sp.lattice != "square":
        raise ValueError("windowed avg_pool is defined on the square lattice only")
    d = len(sp.box)
    out_box = tuple((n - size) // stride + 1 for n in sp.box)
    if min(out_box) < 1:
        raise ValueError("the window does not fit the box")
    out = _Space(out_box, sp.lattice, sp.elements, sp.on_group)
    offsets = list(itertools.product(range(size), repeat=d))

    def window(u):
        return [sp.site_index[tuple(stride * u[c] + a[c] for c in range(d))] for a in offsets]

    def pool(K):
        N = K.shape[0]
        new = np.zeros((N, out.size, N, out.size))
        for ui, u in enumerate(out.sites):
            for vi, v in enumerate(out.sites):
                for e in range(sp.nel):
                    for f in range(sp.nel):
                        acc = np.zeros((N, N))
                        for p in window(u):
                            for q in window(v):
                                acc += K[:, sp.flat(p, e), :, sp.flat(q, f)]
                        new[:, out.flat(ui, e), :, out.flat(vi, f)] = acc / len(offsets) ** 2
        return new
    return _State(out, pool(state.K), None if state.T is None else pool(state.T),
                  state.channels)


def _avg_pool(state, size=None, stride=None):
    """K⁺[(0,h),(0,h')] = mean over sites t, t' of K[(t,h),(t',h')]; the box becomes 1 site.
    With ``size`` (and ``stride``, default ``size``): the windowed mean of :func:`_window_pool`."""
    sp = state.space
    if sp is None:
        raise ValueError("avg_pool needs a spatial signal")
    if size is not None:
        return _window_pool(state, size, size if stride is None else stride)
    N, D = state.K.shape[:2]
    P, E = len(sp.sites), sp.nel

    def pool(K):
        return K.reshape(N, P, E, N, P, E).mean(axis=(1, 4))
    out = _Space((1,) * len(sp.box), sp.lattice, sp.elements, sp.on_group)
    return _State(out, pool(state.K), None if state.T is None else pool(state.T),
                  state.channels)


# ------------------------------------------------------------------------------- network
def _add(a, b):
    if a is None:
        return b
    if b is None:
        return a
    return a + b


def _combine(states, weights):
    s0 = states[0]
    for s in states[1:]:
        if (s.space is None) != (s0.space is None) or s.K.shape != s0.K.shape:
            raise ValueError("branches end on different domains")
    K = sum(w * s.K for w, s in zip(weights, states))
    T = None
    for w, s in zip(weights, states):
        if s.T is not None:
            T = _add(T, w * s.T)
    return _State(s0.space, K, T, s0.channels)


def _run(state, layers, elements, parameterization, direct):
    for layer in layers:
        kind = layer["kind"]
        if kind == "lift":
            if state.space is None or state.space.on_group:
                raise ValueError("lift needs a signal on the box")
            state = _lift(state, layer, elements, parameterization)
        elif kind == "conv":
            if state.space is None or state.space.on_group:
                raise ValueError("conv needs a signal on the box")
            state = _lift(state, layer, [np.eye(len(state.space.box), dtype=np.int64)],
                          parameterization, on_group_out=False)
        elif kind == "gconv":
            state = _gconv(state, layer, parameterization, direct)
        elif kind == "dense":
            state = _dense(state, layer, parameterization)
        elif kind == "group_pool":
            state = _group_pool(state)
        elif kind == "flatten":
            state = _flatten(state)
        elif kind == "avg_pool":
            state = _avg_pool(state, layer.get("size"), layer.get("stride"))
        elif kind == "residual":
            branches = layer.get("branches")
            if branches is None:
                branches = [layer["body"], []]
            outs = [_run(state, b, elements, parameterization, direct) for b in branches]
            state = _combine(outs, [1.0] * len(outs))
        elif kind == "concat":
            outs = [_run(state, b, elements, parameterization, direct)
                    for b in layer["branches"]]
            weights = [1.0 / len(outs)] * len(outs)
            blocks = []
            for w, out in zip(weights, outs):
                blocks += [(w * v, b) for v, b in out.blocks] if out.blocks else [(w, out)]
            state = _combine(outs, weights)
            state.blocks = blocks
        else:
            state = _nonlinearity(state, layer)
    return state


def _propagate(layers, generators, lattice, box_shape, x1, x2, parameterization, direct):
    box = tuple(int(b) for b in box_shape)
    d = len(box)
    x1 = np.asarray(x1, dtype=np.float64)
    x2 = x1 if x2 is None else np.asarray(x2, dtype=np.float64)
    if x1.shape[1:-1] != box or x2.shape[1:-1] != box:
        raise ValueError(f"inputs must have shape (N, *{box}, C)")
    elements = group_closure(generators, d)
    space = _Space(box, lattice, [np.eye(d, dtype=np.int64)], False)
    X = np.concatenate([x1, x2])
    F = np.stack([X[(slice(None),) + s] for s in space.sites], axis=1)  # (N, P, C)
    C = F.shape[-1]
    K0 = np.einsum("npc,mqc->npmq", F, F) / C  # K0[(n,x),(m,x')] = (1/C) Σ_c f_c(x) f'_c(x')
    state = _State(space, K0, None, C)
    state = _run(state, layers, elements, parameterization, direct)
    return state, x1.shape[0], elements


def reference_feature_kernels(layers, generators, lattice, box_shape, x1, x2=None,
                              parameterization="ntk", direct=None):
    """Like :func:`reference_kernels`, returning a dict with ``nngp``/``ntk``, ``elements``
    (the reference's own element order) and ``box``. For a spatial output the kernels have the
    general layout (N1, N2, E, *box, E, *box) (E = |H| on G, no E axes on the box), zero at
    sites outside a hexagonal domain; for an invariant output (N1, N2)."""
    state, n1, elements = _propagate(layers, generators, lattice, box_shape, x1, x2,
                                     parameterization, direct)

    def cut(K):
        if state.space is None:
            return K[:n1, n1:].copy()
        sp = state.space
        N, d = K.shape[0], len(sp.box)
        P, E, Pbox = len(sp.sites), sp.nel, int(np.prod(sp.box))
        bi = np.array([np.ravel_multi_index(s, sp.box) for s in sp.sites], dtype=np.int64)
        A = K.reshape(N, P, E, N, P, E).transpose(0, 2, 1, 3, 5, 4)  # (N, E, P, N, E, P)
        tmp = np.zeros((N, E, Pbox, N, E, P))
        tmp[:, :, bi] = A
        full = np.zeros((N, E, Pbox, N, E, Pbox))
        full[..., bi] = tmp
        full = full.reshape((N, E) + sp.box + (N, E) + sp.box)[:n1]
        full = np.moveaxis(full, 2 + d, 1)[:, n1:]  # (n1, n2, E, *box, E, *box)
        if not sp.on_group:
            full = full[:, :, 0][(slice(None),) * (2 + d) + (0,)]
        return full

    T = state.T if state.T is not None else np.zeros_like(state.K)
    return {"nngp": cut(state.K), "ntk": cut(T), "elements": elements,
            "box": None if state.space is None else state.space.box}


def reference_kernels(layers, generators, lattice, box_shape, x1, x2=None,
                      parameterization="ntk", direct=None):
    """(nngp, ntk) of the network ``layers`` for the point group generated by ``generators``
    (a list of d×d integer matrices; [] for the trivial group) on ``lattice`` ('square' or
    'hexagonal') and the input box ``box_shape``; x1: (N1, *box, C), x2: (N2, *box, C) or None
    (x2 = x1). Invariant outputs give (N1, N2) arrays; spatial outputs the general layout of
    :func:`reference_feature_kernels`."""
    out = reference_feature_kernels(layers, generators, lattice, box_shape, x1, x2,
                                    parameterization, direct)
    return out["nngp"], out["ntk"]
