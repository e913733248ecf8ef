"""Lattice stencils: the filter sums of lift, gconv and conv layers as shift-and-add over the
trailing spatial axes of a kernel, the window means of a windowed avg_pool, and the pairwise
site sums of the pools (jax and numpy only; docs/math/rules.md, docs/math/identities.md).
"""
import numpy as np
import jax
import jax.numpy as jnp

__all__ = ["stencil", "reduced_stencil", "general_stencil", "right_mix", "stack_general",
           "window_mean", "with_theta", "pairwise_sum", "SLICE_LIMIT"]

#: pairwise_sum halves the summed entries until at most this many are left, then adds those
PAIRWISE_LEAVES = 16


def with_theta(stencil_fn, k, theta, *args):
    """(S(K), S(Θ)) for a filter sum S = ``stencil_fn(·, *args)``, linear and acting on each
    pair separately: one call on [K; Θ] stacked on the pair axis, split after; (S(K), None)
    when ``theta`` is None (no NTK). Every entry is the same sum in the same order as two
    separate calls (identical numbers unjitted; under jit equal to rounding, XLA vectorising
    the stacked loop differently); what changes is what XLA fuses: with two
    calls it evaluated the map that produced K and Θ inside each padded copy of each (the
    angle twice, on 1.6× the entries for 3×3 on 16×16), with one call it writes K and Θ once
    and pads them together (2.0× on a p4 relu+gconv stage, ``benchmarks/stencils.py``).

    The stacked input is an optimization barrier: without it jaxlib 0.10.2 on CPU miscompiled
    the self-pair NTK of a residual p4 network whose Θ is a multiple of K (1e-2 off under jit,
    right without jit; tests/compiler/test_reference_agreement.py, p4-residual-gconv-first),
    the XLA fusion bug the separate calls' barrier used to avoid."""
    if theta is None:
        return stencil_fn(k, *args), None
    both = stencil_fn(jax.lax.optimization_barrier(jnp.concatenate([k, theta])), *args)
    return both[:k.shape[0]], both[k.shape[0]:]


def stencil(k, terms, nslots, pads, out_box, mode):
    """mean_j k[..., t + a_j, t' + b_j]: a shift-and-add over the trailing spatial slots.

    ``terms`` lists one offset per slot for each j; ``pads`` gives (lo, hi) per axis; ``mode``
    is 'same' (zero padding), 'circular' (wrap around) or 'valid' (no padding).
    """
    d = len(pads)
    lead = k.ndim - nslots * d
    if mode != "valid" and any(lo or hi for lo, hi in pads):
        widths = [(0, 0)] * lead + list(pads) * nslots
        # the barrier keeps every term a slice of the one padded array: without it XLA reads
        # the centre term (a slice of the pad inside the original) from the unpadded input,
        # which it then writes out as well, with the map that made it evaluated twice (CNN-GAP:
        # 4 fewer of each program's ~30 kernels, a first call 2.2 s -> 1.9 s, the steady call
        # 0.24 s -> 0.20 s; p4 unchanged; docs/performance.md, "The XLA programs made smaller")
        k = jax.lax.optimization_barrier(
            jnp.pad(k, widths, mode="constant" if mode == "same" else "wrap"))
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


def reduced_stencil(k, terms, pads, out_box, mode):
    """K̃⁺[t,t'](q) = mean_y k[t+y, t'+ρ(q)y] for each q: ``terms[q]`` pairs (y, ρ(q)y).

    ``k`` is either a box kernel (p, *box, *box) (the lift) or a reduced group kernel
    (p, H, *box, *box) whose slice q is used for output q (the group convolution).
    """
    grouped = k.ndim == 2 + 2 * len(pads)
    return jnp.stack([stencil(k[:, q] if grouped else k, terms[q], 2, pads, out_box, mode)
                      for q in range(len(terms))], axis=1)


SLICE_LIMIT = 1024  # shifted slices per general stencil before switching to gathers


def general_stencil(k, terms, pads, out_box, mode):
    """K⁺[(t,r),(t',r')] = mean_y k[(t+ρ(r)y, r), (t'+ρ(r')y, r')]: ``terms[r][r']`` pairs
    (ρ(r)y, ρ(r')y). ``k`` is a box kernel (the lift) or a general group kernel.

    Small cases run as |H|²·|S| shifted slices (fast on CPU); large ones (O: 24²·27) as one
    gather per offset y, which keeps the compile time bounded (minutes -> seconds for O).
    """
    d = len(pads)
    grouped = k.ndim == 3 + 2 * d
    order = len(terms)
    if order * order * len(terms[0][0]) <= SLICE_LIMIT:
        blocks = [[stencil(k[(slice(None), r) + (slice(None),) * d + (rp,)] if grouped else k,
                            terms[r][rp], 2, pads, out_box, mode) for rp in range(order)]
                  for r in range(order)]
        return stack_general(blocks, d)
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


def right_mix(k, perms, d):
    """mean_{s∈R} K[(t, rs), (t', r's)]: both group axes permuted by right multiplication."""
    acc = None
    for perm in perms:
        idx = np.asarray(perm)
        part = jnp.take(jnp.take(k, idx, axis=1), idx, axis=2 + d)
        acc = part if acc is None else acc + part
    return acc / len(perms)


def stack_general(blocks, d):
    """blocks[r][r'] of shape (p, *box, *box) -> (p, H, *box, H, *box)."""
    return jnp.stack([jnp.stack(row, axis=1 + d) for row in blocks], axis=1)


def window_mean(k, axes, size, stride):
    """K⁺[u, u'] = (1/size^{2d}) Σ_{a,b ∈ {0..size-1}^d} K[stride·u + a, stride·u' + b]:
    the mean over the valid windows of side ``size`` with step ``stride`` on every spatial axis
    listed in ``axes`` (both slots of a pair kernel, 2d axes; every other axis is kept). An axis
    of n sites becomes floor((n − size)/stride) + 1 (no padding). The mean is separable: each
    axis is reduced in turn by a sum of ``size`` strided slices, and the total is divided once
    by size^len(axes).
    """
    for axis in axes:
        m = (k.shape[axis] - size) // stride + 1
        acc = None
        for a in range(size):
            index = [slice(None)] * k.ndim
            index[axis] = slice(a, a + stride * (m - 1) + 1, stride)
            part = k[tuple(index)]
            acc = part if acc is None else acc + part
        k = acc
    return k / float(size ** len(axes))


def pairwise_sum(k, axes, keepdims=False):
    """Σ_{axes} K with a float32 rounding error that does not grow with the number n of summed
    entries: they are moved last and flattened, summed in blocks of PAIRWISE_LEAVES (any order:
    ≤ 15 u each), the block sums (and the < 16 left over) halved pairwise, K[..., :h] +
    K[..., h:2h] (an odd one out carried along), until at most PAIRWISE_LEAVES are left, which
    are added: at most (⌈log₂ n⌉ + 30) u Σ|K| whatever order the backend reduces in. XLA:CPU
    sums a reduction fused with its producer in one running sum unless its YNNPACK fusion
    takes it (kernelc compiles without: driver.CPU_COMPILER_OPTIONS): n u in the worst case,
    ~√(n/3) u typically, 1e-5 relative on the peers' p4 network's group pool of 262,144
    entries per pair (docs/precision.md, "Sums")."""
    shape = k.shape
    axes = tuple(sorted(a % k.ndim for a in axes))
    kept = [a for a in range(k.ndim) if a not in axes]
    if kept + list(axes) != list(range(k.ndim)):
        k = jnp.transpose(k, kept + list(axes))
    flat = k.reshape(tuple(shape[a] for a in kept) + (-1,))
    n, b = flat.shape[-1], PAIRWISE_LEAVES
    if n > b:  # block sums (a reduce over a minor axis of b: fast, and bounded in any order)
        blocks = jnp.sum(flat[..., :n - n % b].reshape(flat.shape[:-1] + (n // b, b)), axis=-1)
        flat = jnp.concatenate([blocks, flat[..., n - n % b:]], axis=-1)
    while flat.shape[-1] > b:
        h = flat.shape[-1] // 2
        flat = jnp.concatenate([flat[..., :h] + flat[..., h:2 * h], flat[..., 2 * h:]], axis=-1)
    total = jnp.sum(flat, axis=-1)
    if keepdims:
        total = total.reshape(tuple(1 if a in axes else size for a, size in enumerate(shape)))
    return total
