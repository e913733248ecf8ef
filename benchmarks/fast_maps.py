"""Fast arc-cosine/arcsine maps vs atan2, side by side in one run (issue 16, item 1).

1. The relu map alone (K⁺ and Θ⁺ = K̇·Θ of one layer, float32, 10^7 entries laid out like a p4
   group_reduced tile: per-site variances broadcast against the pair-of-sites kernel), exact
   (atan2) vs fast (polynomial, docs/math/fast-maps.md), next to a plain elementwise op with
   the same traffic (read K, Θ; write two arrays). Alternated, best and median of --repeats.
   Then erf's and gelu's maps the same way (their printed code, the arcsine by atan2 or by the
   polynomial, docs/math/fast-maps.md, "The fast arcsine of erf and gelu"), and both with the
   fast determinant as well (not used by kernelc: erf's K̇ gains nothing from it, gelu's
   rational part is not analysed), to show what is left.
2. The p4 network of benchmarks/identities.py (N images 16×16×3, lift 3×3, relu,
   2 × (gconv 3×3, relu), group pool, dense; NNGP + NTK Gram, float32) end to end with
   kernel_fn(fast_maps=False) and with the default (fast in float32), alternated; wall and
   process CPU time (the CPU time is steadier on a shared machine).

    python benchmarks/fast_maps.py [--entries 10000000] [--n 8] [--size 16] [--repeats 5]
                                   [--skip-network] [--skip-arcsine]
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import numpy as np
import jax
import jax.numpy as jnp

import kernelc
from kernelc.rules.nonlinearities import kernel_map
from kernelc.runtime import maps

from identities import P4  # noqa: E402 - the same p4 network as the identities benchmark


def relu_map(k, k11, k22, t):
    """One relu layer as the generated code writes it (K⁺, Θ⁺)."""
    theta = maps.fast_acos_ratio2(k, k11, k22)
    nngp = (k * (jnp.pi - theta) + maps.fast_sqrt_det2(k11, k22, k)) / (2 * jnp.pi)
    return nngp, ((jnp.pi - theta) / (2 * jnp.pi)) * t


def map_inputs(entries: int, seed: int = 0, side: int = 7):
    """float32 (K, k11, k22, Θ) of a p4 group_reduced tile of side×side images with ~entries."""
    n = side
    pairs = max(1, entries // (4 * n**4))
    rng = np.random.default_rng(seed)
    k11 = rng.uniform(0.5, 2, (pairs, 1, n, n, 1, 1)).astype(np.float32)
    k22 = rng.uniform(0.5, 2, (pairs, 1, 1, 1, n, n)).astype(np.float32)
    shape = (pairs, 4, n, n, n, n)
    k = (rng.uniform(-1, 1, shape) * np.sqrt(k11 * k22)).astype(np.float32)
    t = rng.uniform(0, 2, shape).astype(np.float32)
    return [jnp.asarray(a) for a in (k, k11, k22, t)]


def alternate(fns: dict, args: dict, repeats: int) -> dict:
    """name -> list of (wall, cpu) seconds, the functions called in turn."""
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            w, c = time.perf_counter(), time.process_time()
            jax.block_until_ready(fn(*args[name]))
            times[name].append((time.perf_counter() - w, time.process_time() - c))
    return times


def summary(samples):
    wall = [s[0] for s in samples]
    cpu = [s[1] for s in samples]
    return min(wall), statistics.median(wall), statistics.median(cpu)


def bench_map(entries: int, repeats: int) -> None:
    k, k11, k22, t = map_inputs(entries)
    n = k.size
    fns = {}
    for name, setting in (("exact (atan2)", False), ("fast (polynomial)", None)):
        with maps.fast_maps(setting):  # traced here, once
            fn = jax.jit(lambda *a: relu_map(*a))
            jax.block_until_ready(fn(k, k11, k22, t))
        fns[name] = fn
    fns["plain op, same traffic"] = jax.jit(lambda k, k11, k22, t: (k * 0.5 + t, k * t))
    jax.block_until_ready(fns["plain op, same traffic"](k, k11, k22, t))
    times = alternate(fns, {name: (k, k11, k22, t) for name in fns}, repeats)
    print(f"relu map alone (K⁺ and Θ⁺), float32, {n:,} entries, {repeats} alternated runs")
    print(f"{'':26s}{'best ns/entry':>14s}{'median':>10s}{'CPU median':>12s}")
    rows = {name: summary(s) for name, s in times.items()}
    for name, (best, med, cpu) in rows.items():
        print(f"{name:26s}{best / n * 1e9:14.2f}{med / n * 1e9:10.2f}{cpu / n * 1e9:12.2f}")
    e, f = rows["exact (atan2)"], rows["fast (polynomial)"]
    print(f"speed-up exact / fast: best {e[0] / f[0]:.2f}x, median {e[1] / f[1]:.2f}x, "
          f"CPU {e[2] / f[2]:.2f}x")
    with maps.fast_maps(None):
        got = jax.jit(lambda *a: relu_map(*a))(k, k11, k22, t)
    with maps.fast_maps(False):
        ref = jax.jit(lambda *a: relu_map(*a))(k, k11, k22, t)
    scale = jnp.sqrt(k11 * k22) / 2
    print("max |fast − exact| / √(K(x,x)K(x',x')): K⁺ "
          f"{float(jnp.max(jnp.abs(got[0] - ref[0]) / scale)):.2e}, Θ⁺ (over Θ) "
          f"{float(jnp.max(jnp.abs(got[1] - ref[1]) / (t / 2 + 1e-30))):.2e}")


def printed_map(kmap):
    """(K⁺, K̇·Θ) of a KernelMap's printed code, as a function of (K, k11, k22, Θ)."""
    namespace = maps.namespace("jax")
    nngp, kdot = kmap.emit_jax("k11", "k", "k22")
    exec(f"def one_layer(k, k11, k22, t):\n    return {nngp}, ({kdot}) * t",  # noqa: S102
         namespace)
    return namespace["one_layer"]


def bench_arcsine(entries: int, repeats: int) -> None:
    """erf's and gelu's maps (K⁺ and Θ⁺ = K̇·Θ) exact vs fast (fast_maps=True: the arcsine is
    not fast by default, maps.DEFAULT_FAST_HELPERS), as bench_map."""
    k, k11, k22, t = map_inputs(entries)
    n = k.size
    gelu = kernel_map("gelu")
    variants = {
        "erf exact (atan2)": (kernel_map("erf"), False),
        "erf fast": (kernel_map("erf"), True),
        "erf fast, fast √D": (dataclasses.replace(
            kernel_map("erf"), fast_angles=("asin_ratio2", "sqrt_det2")), True),
        "gelu exact (atan2)": (gelu, False),
        "gelu fast": (gelu, True),
        "gelu fast, fast √D": (dataclasses.replace(
            gelu, fast_angles=("asin_ratio2", "sqrt_det2")), True),
    }
    fns = {}
    for name, (kmap, setting) in variants.items():
        with maps.fast_maps(setting):  # traced here, once
            fn = jax.jit(printed_map(kmap))
            jax.block_until_ready(fn(k, k11, k22, t))
        fns[name] = fn
    fns["plain op, same traffic"] = jax.jit(lambda k, k11, k22, t: (k * 0.5 + t, k * t))
    jax.block_until_ready(fns["plain op, same traffic"](k, k11, k22, t))
    times = alternate(fns, {name: (k, k11, k22, t) for name in fns}, repeats)
    print(f"erf and gelu maps alone (K⁺ and Θ⁺), float32, {n:,} entries, {repeats} alternated "
          "runs")
    print(f"{'':26s}{'best ns/entry':>14s}{'median':>10s}{'CPU median':>12s}")
    rows = {name: summary(s) for name, s in times.items()}
    for name, (best, med, cpu) in rows.items():
        print(f"{name:26s}{best / n * 1e9:14.2f}{med / n * 1e9:10.2f}{cpu / n * 1e9:12.2f}")
    for name in ("erf", "gelu"):
        e, f = rows[f"{name} exact (atan2)"], rows[f"{name} fast"]
        print(f"{name} speed-up exact / fast: best {e[0] / f[0]:.2f}x, median "
              f"{e[1] / f[1]:.2f}x, CPU {e[2] / f[2]:.2f}x")
        out = {fast: fns[f"{name} {label}"](k, k11, k22, t)
               for fast, label in ((True, "fast"), (False, "exact (atan2)"))}
        diag = jax.jit(printed_map(kernel_map(name)))
        scale = [jnp.sqrt(jnp.abs(diag(k11, k11, k11, 1.0)[i] * diag(k22, k22, k22, 1.0)[i]))
                 for i in (0, 1)]
        print(f"  max |fast − exact| over √(K(x,x)K(x',x')): K⁺ "
              f"{float(jnp.max(jnp.abs(out[True][0] - out[False][0]) / scale[0])):.2e}, "
              f"Θ⁺ (over Θ·scale) "
              f"{float(jnp.max(jnp.abs(out[True][1] - out[False][1]) / (t * scale[1]))):.2e}")


def bench_p4(n: int, size: int, repeats: int) -> None:
    net = kernelc.compile(P4.format(s=size))
    x = np.random.default_rng(0).normal(size=(n, size, size, 3)).astype(np.float32)
    fns, args = {}, {}
    for name, setting in (("exact (atan2)", False), ("fast (default)", None)):
        def run(x, setting=setting):
            return net.kernel_fn(x, progress=False, fast_maps=setting)
        t0 = time.perf_counter()
        run(x)
        print(f"compile + first call, {name}: {time.perf_counter() - t0:.1f} s")
        fns[name], args[name] = run, (x,)
    times = alternate(fns, args, repeats)
    print(f"p4 network, N = {n} images {size}×{size}×3, NNGP + NTK Gram, float32, "
          f"{repeats} alternated runs")
    print(f"{'':18s}{'best s':>9s}{'median s':>10s}{'CPU median s':>14s}")
    rows = {name: summary(s) for name, s in times.items()}
    for name, (best, med, cpu) in rows.items():
        print(f"{name:18s}{best:9.3f}{med:10.3f}{cpu:14.3f}")
    e, f = rows["exact (atan2)"], rows["fast (default)"]
    print(f"speed-up exact / fast: best {e[0] / f[0]:.2f}x, median {e[1] / f[1]:.2f}x, "
          f"CPU {e[2] / f[2]:.2f}x")
    a = net.kernel_fn(x, progress=False, fast_maps=False)
    b = net.kernel_fn(x, progress=False)
    for name in ("nngp", "ntk"):
        d = np.sqrt(np.outer(np.diag(a[name]), np.diag(a[name])))
        print(f"max normalised |fast − exact| {name}: "
              f"{float(np.max(np.abs(b[name] - a[name]) / d)):.2e}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--entries", type=int, default=10_000_000)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--size", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--skip-network", action="store_true")
    ap.add_argument("--skip-arcsine", action="store_true", help="relu only")
    args = ap.parse_args(argv)
    print(f"JAX {jax.__version__} on {jax.devices()[0].platform}")
    bench_map(args.entries, args.repeats)
    if not args.skip_arcsine:
        print()
        bench_arcsine(args.entries, args.repeats)
    if not args.skip_network:
        print()
        bench_p4(args.n, args.size, args.repeats)


if __name__ == "__main__":
    main()
