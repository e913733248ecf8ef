"""Brute-force numpy versions of the finite layers (loops over sites, elements and offsets),
straight from the layer definitions of docs/math/conventions.md, for tiny inputs only."""
import itertools

import numpy as np


def _read(f, site, box, padding):
    """f at an integer site of the box (zero outside for 'same', wrapped for 'circular')."""
    if padding == "circular":
        return f[tuple(int(s) % n for s, n in zip(site, box))]
    if all(0 <= s < n for s, n in zip(site, box)):
        return f[tuple(int(s) for s in site)]
    return np.zeros(f.shape[len(box):])


def _sites(box, support, padding):
    """Output sites and, for each, the input site its stencil is centred on."""
    lo = np.maximum(-support.min(axis=0), 0)
    if padding == "valid":
        extent = support.max(axis=0) - support.min(axis=0)
        out = tuple(int(n - e) for n, e in zip(box, extent))
        return out, [(u, np.array(u) + lo) for u in itertools.product(*map(range, out))]
    return tuple(box), [(u, np.array(u)) for u in itertools.product(*map(range, box))]


def lift(group, x, W, b, support, W_std, b_std, padding):
    """z(t, r) = σ_w/√(C|S|) Σ_{c, y} ω_c(y) f_c(t + ρ(r) y) + σ_b β. x: (N, *box, C)."""
    n, box, c = x.shape[0], x.shape[1:-1], x.shape[-1]
    m, H = len(support), group.order
    out_box, sites = _sites(box, support, padding)
    z = np.zeros((n,) + out_box + (H, W.shape[-1]))
    for k in range(n):
        for u, t in sites:
            for r in range(H):
                acc = 0
                for i, y in enumerate(support):
                    acc = acc + _read(x[k], t + group.elements[r] @ y, box, padding) @ W[i]
                z[(k,) + u + (r,)] = W_std / np.sqrt(c * m) * acc + (b_std * b if b is not None else 0)
    return z


def gconv(group, x, W, b, support, rotations, W_std, b_std, padding):
    """z(t, r) = σ_w/√(C|S||R|) Σ_{c, y, s∈R} ω_c(y, s) f_c(t + ρ(r) y, r s) + σ_b β."""
    n, box, H, c = x.shape[0], x.shape[1:-2], x.shape[-2], x.shape[-1]
    m = len(support)
    out_box, sites = _sites(box, support, padding)
    z = np.zeros((n,) + out_box + (H, W.shape[-1]))
    for k in range(n):
        for u, t in sites:
            for r in range(H):
                acc = 0
                for i, y in enumerate(support):
                    f = _read(x[k], t + group.elements[r] @ y, box, padding)  # (H, C)
                    for a, s in enumerate(rotations):
                        acc = acc + f[group.cayley[r, s]] @ W[i, a]
                z[(k,) + u + (r,)] = (W_std / np.sqrt(c * m * len(rotations)) * acc
                                      + (b_std * b if b is not None else 0))
    return z


def conv(x, W, b, support, W_std, b_std, padding):
    """z(t) = σ_w/√(C|S|) Σ_{c, y} ω_c(y) f_c(t + y) + σ_b β. x: (N, *box, C)."""
    n, box, c = x.shape[0], x.shape[1:-1], x.shape[-1]
    m = len(support)
    out_box, sites = _sites(box, support, padding)
    z = np.zeros((n,) + out_box + (W.shape[-1],))
    for k in range(n):
        for u, t in sites:
            acc = 0
            for i, y in enumerate(support):
                acc = acc + _read(x[k], t + y, box, padding) @ W[i]
            z[(k,) + u] = W_std / np.sqrt(c * m) * acc + (b_std * b if b is not None else 0)
    return z


def window_pool(x, d, size, stride):
    """Windowed mean: out(u) = (1/size^d) Σ_{a ∈ {0..size−1}^d} x(stride·u + a) over the valid
    windows; x: (N, *box, ...) with d spatial axes after the batch axis."""
    box = x.shape[1:1 + d]
    out_box = tuple((n - size) // stride + 1 for n in box)
    out = np.zeros(x.shape[:1] + out_box + x.shape[1 + d:])
    for u in itertools.product(*map(range, out_box)):
        acc = 0.0
        for a in itertools.product(range(size), repeat=d):
            acc = acc + x[(slice(None),) + tuple(stride * ui + ai for ui, ai in zip(u, a))]
        out[(slice(None),) + u] = acc / size ** d
    return out
