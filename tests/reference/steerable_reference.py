"""A slow, independent reference for the steerable family (docs/math/steerable.md), for tiny
inputs in tests only. It imports nothing from kernelc: the group's matrices, the ring basis and
its correlation P(a, b) are rebuilt here from the formulas of the docs, and every weight layer
loops explicitly over the orientations r, r' (and u), the offsets y, y' of the k×k support.

Kernels are dense float64 arrays K[n, i, m, j] over all inputs n, m (x1 ∪ x2 propagated
together) and domain points i = site·|H| + r (r = 0 on the input box). Layers are dicts:

    {"kind": "lift" | "gconv", "size": 3, "basis": "rings" | "pixel", "W_std": .., "b_std": ..}
    {"kind": "relu"}, {"kind": "group_pool"}, {"kind": "dense", "W_std": .., "b_std": ..}

NTK parameterisation, zero ('same') padding only.
"""
import math

import numpy as np


def matrices(n, reflections):
    """Element j + n·m: rotation by 2πj/n after the reflection (a, b) ↦ (a, −b) (m = 1)."""
    out = []
    for m in range(2 if reflections else 1):
        for j in range(n):
            t = 2 * math.pi * j / n
            rot = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
            out.append(rot @ (np.diag([1.0, -1.0]) if m else np.eye(2)))
    return out


def offsets(size):
    r = size // 2
    return [(a, b) for a in range(-r, r + 1) for b in range(-r, r + 1)]


def ring_functions(size):
    """The rings basis as a list of functions of a point (escnn's default rings, widths and
    frequency cutoff; j > 0 harmonics vanish at the origin), each (cos, sin) pair scaled to mean
    squared norm 1 on the unrotated support."""
    outer = size // 2
    specs = []
    for rad in range(outer + 1):
        sigma = 0.005 if rad == 0 else (0.4 if rad == outer else 0.6)
        top = 0 if rad == 0 else min(2 * rad, 2 if rad == outer else 2 * rad - (rad + 1) % 2)
        for j in range(top + 1):
            specs.append((rad, sigma, j))

    def make(rad, sigma, j, trig):
        def f(p):
            s = math.hypot(p[0], p[1])
            g = math.exp(-(s - rad) ** 2 / (2 * sigma ** 2))
            if j == 0:
                return g
            return 0.0 if s == 0 else g * trig(j * math.atan2(p[1], p[0]))
        return f
    funcs = []
    for rad, sigma, j in specs:
        pair = [make(rad, sigma, j, math.cos)] + ([make(rad, sigma, j, math.sin)] if j else [])
        norm = np.mean([sum(f(y) ** 2 for y in offsets(size)) for f in pair])
        funcs += [(lambda f, c: (lambda p: c * f(p)))(f, 1 / math.sqrt(norm)) for f in pair]
    return funcs


def pixel_functions(size):
    def make(y):
        return lambda p: float(abs(p[0] - y[0]) < 1e-9 and abs(p[1] - y[1]) < 1e-9)
    return [make(y) for y in offsets(size)]


def correlation(layer):
    """P(a, b) = Σ_k B_k(a) B_k(b) and |B|."""
    funcs = (ring_functions if layer.get("basis", "rings") == "rings"
             else pixel_functions)(layer.get("size", 3))
    return (lambda a, b: sum(f(a) * f(b) for f in funcs)), len(funcs)


def _shift(K, box, order_in, y, slot):
    """K with the site of slot ``slot`` moved to site + y (zero outside the box)."""
    n1, d1, n2, d2 = K.shape
    h, w = box
    out = np.zeros_like(K)
    for a in range(h):
        for b in range(w):
            src = (a + y[0], b + y[1])
            if not (0 <= src[0] < h and 0 <= src[1] < w):
                continue
            for r in range(order_in):
                i, s = (a * w + b) * order_in + r, (src[0] * w + src[1]) * order_in + r
                if slot == 0:
                    out[:, i] = K[:, s]
                else:
                    out[:, :, :, i] = K[:, :, :, s]
    return out


def _weight(K, T, layer, box, mats, order_in, product):
    """One lift (order_in = 1) or gconv: loops over r, r', (u,) y, y'."""
    P, nb = correlation(layer)
    order = len(mats)
    inv = [np.linalg.inv(m) for m in mats]
    sites = box[0] * box[1]
    n = K.shape[0]
    KL = np.zeros((n, sites * order, n, sites * order))
    TL = np.zeros_like(KL)
    ys = offsets(layer.get("size", 3))
    shifted = {}
    for y in ys:
        for y2 in ys:
            shifted[y, y2] = (_shift(_shift(K, box, order_in, y, 0), box, order_in, y2, 1),
                              _shift(_shift(T, box, order_in, y, 0), box, order_in, y2, 1))
    us = range(order) if order_in > 1 else [None]
    for r in range(order):
        for r2 in range(order):
            acc_k = np.zeros((n, sites, n, sites))
            acc_t = np.zeros_like(acc_k)
            for y in ys:
                for y2 in ys:
                    c = P(inv[r] @ np.array(y, float), inv[r2] @ np.array(y2, float))
                    if c == 0:
                        continue
                    sk, st = shifted[y, y2]
                    for u in us:
                        a = r if u is None else product[r][u]
                        b = r2 if u is None else product[r2][u]
                        a, b = (0, 0) if u is None else (a, b)
                        acc_k += c * sk.reshape(n, sites, order_in, n, sites, order_in)[
                            :, :, a, :, :, b]
                        acc_t += c * st.reshape(n, sites, order_in, n, sites, order_in)[
                            :, :, a, :, :, b]
            norm = nb * (order if order_in > 1 else 1)
            KL.reshape(n, sites, order, n, sites, order)[:, :, r, :, :, r2] = acc_k / norm
            TL.reshape(n, sites, order, n, sites, order)[:, :, r, :, :, r2] = acc_t / norm
    Kn = layer["W_std"] ** 2 * KL + layer["b_std"] ** 2
    return Kn, layer["W_std"] ** 2 * TL + Kn


def _relu(K, T):
    n, d = K.shape[:2]
    diag = np.einsum("nini->ni", K)
    k11 = diag[:, :, None, None]
    k22 = diag[None, None, :, :]
    c = np.clip(K / np.sqrt(k11 * k22), -1, 1)
    theta = np.arccos(c)
    Kn = np.sqrt(k11 * k22) * (np.sin(theta) + (math.pi - theta) * c) / (2 * math.pi)
    return Kn, T * (math.pi - theta) / (2 * math.pi)


def kernels(x, layers, n, reflections):
    """{"nngp", "ntk"} (N, N) of the network ``layers`` on images x (N, h, w, C)."""
    x = np.asarray(x, dtype=np.float64)
    N, h, w, C = x.shape
    mats = matrices(n, reflections)
    order = len(mats)
    product = [[int(np.argmin([np.abs(mats[a] @ mats[b] - m).max() for m in mats]))
                for b in range(order)] for a in range(order)]
    f = x.reshape(N, h * w, C)
    K = np.einsum("nic,mjc->nimj", f, f) / C
    T = np.zeros_like(K)
    order_in = 1
    for layer in layers:
        kind = layer["kind"]
        if kind in ("lift", "gconv"):
            K, T = _weight(K, T, layer, (h, w), mats, order_in, product)
            order_in = order
        elif kind == "relu":
            K, T = _relu(K, T)
        elif kind == "group_pool":
            K, T = K.mean(axis=(1, 3)), T.mean(axis=(1, 3))
        elif kind == "dense":
            K = layer["W_std"] ** 2 * K + layer["b_std"] ** 2
            T = layer["W_std"] ** 2 * T + K
        else:
            raise ValueError(kind)
    return {"nngp": K, "ntk": T}
