"""Steerable filters on the pixel grid (docs/math/steerable.md): the rotations and reflections of
C_n and D_n as 2×2 matrices, the sampled filter bases, their coupling matrices, and the mixed
stencils that apply them to kernels (jax and numpy only: generated modules import this).

A filter is ψ(y) = Σ_k w_k B_k(y) over a basis {B_k} of continuous functions on R², sampled at
the offsets y of the filter's k×k support S. Rotating it by R is exact on the coefficients,
ψ(R⁻¹y) = Σ_k w_k B_k(R⁻¹y), while the rotated filter is only *sampled* on the grid. With
weights iid N(0, 1), the filters of orientations r, r' are correlated through

    P(a, b) = Σ_k B_k(a) B_k(b),

which is invariant, P(Ra, Rb) = P(a, b), when the span of the basis is closed under R and its
action on the coefficients is orthogonal. The layers' kernels are then *mixed stencils*,

    K⁺[t,t'](q) = Σ_{i,j} M_q[i,j] K[t+y_i, t'+y_j](q),   M_q[i,j] = P(y_i, R_q⁻¹y_j)/|B|,

coupling different offsets y_i ≠ y_j (the pixel basis B_k(y) = [y = y_k] makes M_q a
permutation matrix, and the stencil the diagonal one of the lattice family).

Element order of C_n (D_n): index j + n·m is R = Rot(2πj/n)·F^m, F = diag(1, −1) the reflection
y ↦ (y₀, −y₁); the identity is index 0.
"""
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

#: What generated modules import (the network and the group import the rest directly).
__all__ = ["mixed_stencil", "general_mixed_stencil"]

#: Gaussian ring widths of the "rings" basis (escnn's defaults: 0.6, the outermost ring 0.4,
#: a ring at radius 0 is a point, width 0.005).
RING_SIGMA = 0.6
OUTER_RING_SIGMA = 0.4
CENTRE_SIGMA = 0.005
#: How far a rotated pixel-basis offset may lie from a grid point and still be that point.
GRID_TOL = 1e-9


def group_matrices(n, reflections):
    """(|H|, 2, 2) float64: element j + n·m is Rot(2πj/n)·F^m (|H| = n, or 2n with reflections).
    Multiples of 90° are set exactly (cos/sin rounded), so grid rotations map offsets to grid
    points without round-off."""
    mats = []
    for m in range(2 if reflections else 1):
        flip = np.diag([1.0, -1.0]) if m else np.eye(2)
        for j in range(n):
            angle = 2 * math.pi * j / n
            c, s = math.cos(angle), math.sin(angle)
            if (4 * j) % n == 0:  # a multiple of 90°: exact integers
                c, s = float(round(c)), float(round(s))
            mats.append(np.array([[c, -s], [s, c]]) @ flip)
    return np.stack(mats)


def support_offsets(size):
    """(k², 2) int: the k×k box {−(k−1)/2 … (k−1)/2}², lexicographic (odd k)."""
    r = (size - 1) // 2
    return np.array([(a, b) for a in range(-r, r + 1) for b in range(-r, r + 1)], dtype=np.int64)


def _ring_terms(size, max_frequency):
    """The (radius, σ, frequency, parity) of each function of the "rings" basis of a size×size
    filter: rings at radii 0, 1, …, (k−1)/2; on a ring of radius ρ the angular frequencies
    j ≤ min(2ρ, F(ρ)), F(0) = 0, F(outer) = 2, else 2ρ − (ρ+1 mod 2) (escnn's default
    cutoff), capped by ``max_frequency``; parity 0 = cos jθ, 1 = sin jθ (j > 0)."""
    outer = (size - 1) // 2
    terms = []
    for radius in range(outer + 1):
        if radius == 0:
            sigma, top = CENTRE_SIGMA, 0
        else:
            sigma = OUTER_RING_SIGMA if radius == outer else RING_SIGMA
            top = min(2 * radius, 2 if radius == outer else 2 * radius - (radius + 1) % 2)
        if max_frequency is not None:
            top = min(top, max_frequency)
        for j in range(top + 1):
            for parity in ((0,) if j == 0 else (0, 1)):
                terms.append((radius, sigma, j, parity))
    return terms


def _ring_values(points, size, max_frequency):
    """(|B|, P): g_ρ(|a|)·{cos, sin}(jθ_a)·c_{ρ,j} at the points a (P, 2), with the Gaussian
    ring g_ρ(s) = exp(−(s − ρ)²/2σ²). A harmonic of frequency j > 0 is 0 at the origin (θ is
    undefined there; any other value would break rotation invariance). c_{ρ,j} normalises the
    pair (cos, sin) on the unrotated support to mean squared norm 1, the same for both, so that
    rotations act orthogonally on the coefficients."""
    terms = _ring_terms(size, max_frequency)

    def raw(pts):
        rad = np.hypot(pts[:, 0], pts[:, 1])
        theta = np.arctan2(pts[:, 1], pts[:, 0])
        rows = []
        for radius, sigma, j, parity in terms:
            g = np.exp(-(rad - radius) ** 2 / (2 * sigma ** 2))
            if j == 0:
                rows.append(g)
            else:
                wave = np.cos(j * theta) if parity == 0 else np.sin(j * theta)
                rows.append(np.where(rad > 0, g * wave, 0.0))
        return np.array(rows)
    ref = raw(support_offsets(size).astype(np.float64))
    scale = []
    for radius, sigma, j, parity in terms:
        pair = [i for i, t in enumerate(terms) if t[:3] == (radius, sigma, j)]
        scale.append(1.0 / math.sqrt(np.mean([np.sum(ref[i] ** 2) for i in pair])))
    return np.array(scale)[:, None] * raw(np.asarray(points, dtype=np.float64))


def _pixel_values(points, size, max_frequency):
    """(|S|, P): B_k(a) = [a = y_k], the pixel basis. Defined only at grid points: a point
    farther than GRID_TOL from the grid raises ValueError (the rotation does not map the grid
    onto itself)."""
    points = np.asarray(points, dtype=np.float64)
    nearest = np.round(points)
    if np.abs(points - nearest).max(initial=0.0) > GRID_TOL:
        raise ValueError("the pixel basis is defined on grid points only: rotate it by "
                         "multiples of 90° (groups C1, C2, C4, D1, D2, D4)")
    offsets = support_offsets(size)
    return np.all(nearest[None, :, :] == offsets[:, None, :], axis=2).astype(np.float64)


#: The bases a filter may be drawn from (:func:`basis_functions`).
BASES = ("rings", "pixel")


def basis_functions(basis, size, max_frequency=None, points=None):
    """(|B|, P) values of the ``basis`` functions of a size×size filter at ``points`` (default:
    the support offsets, unrotated)."""
    if points is None:
        points = support_offsets(size)
    values = {"rings": _ring_values, "pixel": _pixel_values}[basis]
    return values(points, size, max_frequency)


def rotated_basis(n, reflections, basis, size, max_frequency=None):
    """(|H|, |B|, |S|): B_k(R_r⁻¹ y) for every element r and support offset y — the sampled
    basis of the filter rotated by R_r (rotate the filter = evaluate the basis at R_r⁻¹y)."""
    offsets = support_offsets(size).astype(np.float64)
    return np.stack([basis_functions(basis, size, max_frequency,
                                     offsets @ np.linalg.inv(rot).T)
                     for rot in group_matrices(n, reflections)])


@functools.lru_cache(maxsize=64)
def steerable_coupling(n, reflections, basis, size, max_frequency=None, general=False):
    """The coupling matrices of a steerable filter, float64:

    reduced (``general=False``), (|H|, |S|, |S|): M_q[i,j] = (1/|B|) Σ_k B_k(y_i) B_k(R_q⁻¹y_j);
    general, (|H|, |H|, |S|, |S|): M_{r,r'}[i,j] = (1/|B|) Σ_k B_k(R_r⁻¹y_i) B_k(R_{r'}⁻¹y_j).

    Both are (1/|B|)·P(a, b) of the module docstring, so M_{r,r'} = M_{r'r⁻¹} (right
    invariance (R)); the 1/|B| makes the mixed stencil a mean, like the lattice stencils.
    Computed once per filter (cached, read-only): the rules ask for it, then every trace of a
    generated module's stencils.
    """
    rotated = rotated_basis(n, reflections, basis, size, max_frequency)
    count = rotated.shape[1]
    if general:
        coupling = np.einsum("rki,skj->rsij", rotated, rotated) / count
    else:
        coupling = np.einsum("ki,qkj->qij", rotated[0], rotated) / count
    coupling.flags.writeable = False
    return coupling


def stencil_terms(steerable_filter):
    """The (y_i, y_j) terms a mixed stencil of ``steerable_filter`` computes per output entry
    (its cost): all |S|² through the convolution form (|S|² > FUSED_TERMS), otherwise the pairs
    whose coupling is nonzero for some orientation (:func:`_weights` skips the others; the pixel
    basis keeps the pairs (y, R_q y) of every q)."""
    coupling = steerable_coupling(*steerable_filter)
    pairs = coupling.shape[-1] ** 2
    if pairs > FUSED_TERMS:
        return pairs
    return int(np.any(coupling != 0, axis=0).sum())


def _padded(k, first, second, pads, mode):
    """``k`` zero-padded ('same') or wrapped ('circular') on the site axes ``first`` and
    ``second`` (the two slots); unchanged for 'valid'."""
    if mode == "valid" or not any(lo or hi for lo, hi in pads):
        return k
    widths = [(0, 0)] * k.ndim
    for axes in (first, second):
        for axis, pad in zip(axes, pads):
            widths[axis] = tuple(pad)
    return jnp.pad(k, widths, mode="constant" if mode == "same" else "wrap")


def _shift(k, axes, offset, pads, out_box):
    """k[..., t + offset, ...] on ``axes`` for t in the output box."""
    index = [slice(None)] * k.ndim
    for axis, y, (lo, _), n in zip(axes, offset, pads, out_box):
        index[axis] = slice(lo + int(y), lo + int(y) + n)
    return k[tuple(index)]


def _mixed(k, weights, support, pads, out_box, mode, first, second):
    """Σ_{i,j} W[i,j] · k[t+y_i, t'+y_j]: for each i, the second slot (axes ``second``) shifted
    by every y_j and weighted by W[i,j] (an array broadcast against ``k``: the coupling of every
    orientation at once), summed, then the first slot shifted by y_i and added. Written as
    shifted slices and multiply-adds, which XLA fuses into one loop over the output: on CPU ~10×
    faster than stacking the |S| shifted copies and contracting them with an einsum (measured,
    benchmarks/steerable.py). Pairs (i, j) whose weights are all zero are skipped (the pixel
    basis keeps |S| of |S|²)."""
    # materialise the padded input once: otherwise XLA fuses its producer (a nonlinearity's
    # arc-cosine map) into each of the |S|² terms and evaluates it |S|² times per entry
    k = jax.lax.optimization_barrier(_padded(k, first, second, pads, mode))
    acc = None
    for i, yi in enumerate(support):
        inner = None
        for j, yj in enumerate(support):
            w = weights[i][j]
            if w is None:
                continue
            part = w * _shift(k, second, yj, pads, out_box)
            inner = part if inner is None else inner + part
        if inner is None:
            continue
        part = _shift(inner, first, yi, pads, out_box)
        acc = part if acc is None else acc + part
    return acc


#: Most coupling terms |S|² a mixed stencil writes out as fused multiply-adds (3×3: 81); larger
#: filters go through one depthwise convolution instead, whose graph does not grow with |S|²
#: (5×5 on 10×10: compile 0.3 vs 2.0 s per stencil, and minutes for a whole network; run time
#: within 1.1× either way, measured on CPU; 3×3: the fused form is 4-7× faster).
FUSED_TERMS = 81


def _convolved(k, flat, support, pads, out_box, mode, groups):
    """Σ_{i,j} M[c,i,j] k[t+y_i, t'+y_j] for a kernel ``k`` (p, C, *box, *box) with channels c:
    the second slot by one depthwise convolution (batch p × first-slot sites, ``groups`` = C
    input channels, |S| output channels per coupling row: ``flat`` is (C_out·|S|, |S|), row
    c·|S| + i = M[c, i, :]), then the first slot shifted by each y_i and added.
    Returns (p, C_out, *out, *out)."""
    from jax import lax
    d = len(pads)
    first, second = tuple(range(2, 2 + d)), tuple(range(2 + d, 2 + 2 * d))
    padded = _padded(k, first, second, pads, mode)
    p, channels = padded.shape[:2]
    sites, inner = padded.shape[2:2 + d], padded.shape[2 + d:]
    rows = padded.transpose((0,) + first + (1,) + second).reshape(
        (p * int(np.prod(sites)), channels) + inner)
    size = int(round(len(support) ** (1 / d)))
    filters = jnp.asarray(flat.reshape((-1, 1) + (size,) * d), dtype=k.dtype)
    spatial = tuple(range(2, 2 + d))
    numbers = lax.ConvDimensionNumbers((0, 1) + spatial, (0, 1) + spatial, (0, 1) + spatial)
    out = lax.conv_general_dilated(rows, filters, (1,) * d, "VALID", dimension_numbers=numbers,
                                   feature_group_count=groups, precision=lax.Precision.HIGHEST)
    out = out.reshape((p,) + sites + (-1, len(support)) + tuple(out_box))
    acc = None
    for i, y in enumerate(support):
        part = _shift(out[(slice(None),) * (2 + d) + (i,)], range(1, 1 + d), y, pads, out_box)
        acc = part if acc is None else acc + part
    return acc.transpose((0, 1 + d) + tuple(range(1, 1 + d)) + tuple(range(2 + d, 2 + 2 * d)))


def _weights(coupling, shape, dtype):
    """W[i][j]: the coupling's (i, j) entries of every orientation (pair), reshaped to ``shape``
    to broadcast against the kernel; None where they are all zero."""
    return [[None if not np.any(coupling[..., i, j]) else
             jnp.asarray(coupling[..., i, j].reshape(shape), dtype=dtype)
             for j in range(coupling.shape[-1])] for i in range(coupling.shape[-2])]


def mixed_stencil(k, steerable_filter, pads, out_box, mode):
    """K̃⁺[t,t'](q) = Σ_{i,j} M_q[i,j] k[t+y_i, t'+y_j](q), with M the reduced coupling
    (:func:`steerable_coupling`) of ``steerable_filter`` = (n, reflections, basis, size,
    max_frequency). ``k`` is a box kernel (p, *box, *box) (the lift: every q reads it) or a
    reduced group kernel (p, H, *box, *box) (the group convolution: q reads slice q); ``mode``
    'same' (zero padding), 'circular' or 'valid'. Returns (p, H, *out, *out)."""
    coupling = steerable_coupling(*steerable_filter)
    support = support_offsets(steerable_filter[3])
    d = len(pads)
    if k.ndim == 1 + 2 * d:  # a box kernel: one slice for every q
        k = k[:, None]
    order = coupling.shape[0]
    if len(support) ** 2 > FUSED_TERMS:
        return _convolved(k, coupling.reshape(order * len(support), -1), support, pads,
                          out_box, mode, groups=k.shape[1])
    weights = _weights(coupling, (1, order) + (1,) * (2 * d), k.dtype)
    return _mixed(k, weights, support, pads, out_box, mode,
                  tuple(range(2, 2 + d)), tuple(range(2 + d, 2 + 2 * d)))


def general_mixed_stencil(k, steerable_filter, pads, out_box, mode):
    """K⁺[(t,r),(t',r')] = Σ_{i,j} M_{r,r'}[i,j] k[(t+y_i, r), (t'+y_j, r')], with M the general
    coupling (:func:`steerable_coupling`, ``general=True``) of ``steerable_filter``. ``k`` is a
    box kernel (p, *box, *box) (the lift) or a general group kernel (p, H, *box, H, *box)
    already mixed over the group axis (``right_mix``). Returns (p, H, *out, H, *out)."""
    coupling = steerable_coupling(*steerable_filter, general=True)
    support = support_offsets(steerable_filter[3])
    d = len(pads)
    order = coupling.shape[0]
    if len(support) ** 2 > FUSED_TERMS:  # channels (r, r'): one per coupling matrix
        if k.ndim == 1 + 2 * d:
            channels = k[:, None]
        else:
            channels = k.transpose((0, 1, 2 + d) + tuple(range(2, 2 + d))
                                   + tuple(range(3 + d, 3 + 2 * d)))
            channels = channels.reshape((k.shape[0], order * order) + channels.shape[3:])
        out = _convolved(channels, coupling.reshape(order * order * len(support), -1), support,
                         pads, out_box, mode, groups=channels.shape[1])
        out = out.reshape((k.shape[0], order, order) + out.shape[2:])
        return out.transpose((0, 1) + tuple(range(3, 3 + d)) + (2,)
                             + tuple(range(3 + d, 3 + 2 * d)))
    if k.ndim == 1 + 2 * d:  # a box kernel: the same for every (r, r')
        k = k.reshape((k.shape[0], 1) + k.shape[1:1 + d] + (1,) + k.shape[1 + d:])
    weights = _weights(coupling, (1, order) + (1,) * d + (order,) + (1,) * d, k.dtype)
    return _mixed(k, weights, support, pads, out_box, mode,
                  tuple(range(2, 2 + d)), tuple(range(3 + d, 3 + 2 * d)))
