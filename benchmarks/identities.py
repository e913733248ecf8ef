"""Identities on vs off, side by side in one run (issue: the kernel compiler).

The p4 network of the benchmark: N=8 images 16×16×3, lift 3×3, relu, 2 × (gconv 3×3, relu),
group pool, dense; float32. Times the full NNGP+NTK Gram matrix with all identities (R, S), with
none (general path, all pairs), and the plain CNN of the same shape; prints the ratios and the
achieved memory bandwidth against a measured copy bandwidth.

    python benchmarks/identities.py [--n 8] [--size 16] [--repeats 3]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import jax
import jax.numpy as jnp

import kernelc
from kernelc.explain import pair_cost

P4 = """network bench_p4
group p4
input {s} x {s} channels 3
lift(size=3, W_std=1.4, b_std=0.1)
relu
repeat 2 {{ gconv(size=3, W_std=1.4, b_std=0.1)  relu }}
group_pool
dense(1)
"""
CNN = """network bench_cnn
group Z2
input {s} x {s} channels 3
conv(size=3, W_std=1.4, b_std=0.1)
relu
repeat 2 {{ conv(size=3, W_std=1.4, b_std=0.1)  relu }}
avg_pool
flatten
dense(1)
"""


def copy_bandwidth(nbytes: int = 256 << 20, repeats: int = 5) -> float:
    """Bytes per second of a jitted out-of-place copy (read + write) of a large array."""
    x = jnp.ones(nbytes // 4, jnp.float32)
    f = jax.jit(lambda a: a * 1.0001)
    f(x).block_until_ready()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        f(x).block_until_ready()
        best = min(best, time.perf_counter() - t)
    return 2 * nbytes / best


def modelled_bytes(net, n_pairs: int) -> float:
    """Bytes a pass must move at least: every op reads its input and writes its output once
    (NNGP and NTK), float32."""
    total = 0
    for nd in net.derivation.nodes:
        for op in nd.ops:
            total += 2 * op.entries * (2 if op.ntk_lines else 1)
    return total * 4.0 * n_pairs


def timed(net, x, repeats, **kw):
    net.kernel_fn(x, progress=False, **kw)  # compile
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        net.kernel_fn(x, progress=False, **kw)
        best = min(best, time.perf_counter() - t)
    return best


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--size", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    x = np.random.default_rng(0).normal(size=(args.n, args.size, args.size, 3)).astype(np.float32)
    on = kernelc.compile(P4.format(s=args.size))
    off = kernelc.compile(P4.format(s=args.size), identities={"R": False, "D": False, "S": False})
    cnn = kernelc.compile(CNN.format(s=args.size))

    t_on = timed(on, x, args.repeats)
    t_off = timed(off, x, args.repeats, symmetric=False)
    t_cnn = timed(cnn, x, args.repeats)
    g_on = on.kernel_fn(x, progress=False)
    g_off = off.kernel_fn(x, progress=False, symmetric=False)
    err = max(float(np.max(np.abs(g_on[k] - g_off[k])) / np.max(np.abs(g_off[k]))) for k in g_on)

    bw = copy_bandwidth()
    n = args.n
    pairs_on = n * (n - 1) // 2 + n
    pairs_off = n * n + n
    rows = [("p4, identities on (R, S)", t_on, on, pairs_on),
            ("p4, identities off (general)", t_off, off, pairs_off),
            ("plain CNN, same shape (S)", t_cnn, cnn, pairs_on)]
    print(f"N = {n} images {args.size}×{args.size}×3, float32, NNGP + NTK, "
          f"best of {args.repeats}; JAX {jax.__version__} on {jax.devices()[0].platform}")
    print(f"measured copy bandwidth: {bw / 1e9:.1f} GB/s")
    print(f"{'path':32} {'time [s]':>9} {'GFLOP':>8} {'GB moved':>9} {'GB/s':>7} {'% copy bw':>9}")
    for label, t, net, pairs in rows:
        gflop = pair_cost(net.derivation)["flops"] * pairs / 1e9
        gbytes = modelled_bytes(net, pairs) / 1e9
        print(f"{label:32} {t:9.3f} {gflop:8.2f} {gbytes:9.2f} {gbytes / t:7.2f} "
              f"{100 * gbytes * 1e9 / t / bw:8.1f}%")
    print(f"speed-up of the identities (off / on): {t_off / t_on:.2f}×  (target ≥ 3.5×)")
    print(f"p4 with identities vs plain CNN (p4 / CNN): {t_on / t_cnn:.2f}×  (|H| = 4)")
    print(f"max relative difference on vs off: {err:.2e}")


if __name__ == "__main__":
    main()
