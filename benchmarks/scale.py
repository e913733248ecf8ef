"""How kernelc's throughput scales: pairs per second vs N, vs image side, vs group, and the
projected time of a 10k × 10k Gram matrix of 14 × 14 p4m images (issue 16, item 5).

The network is the paper's shape on every group: lift 3×3, relu, 2 × (gconv 3×3, relu), group
pool, dense(1) (W_std = 1.4, b_std = 0.1, 'same' padding); on Z2 (the plain CNN) conv, relu,
2 × (conv, relu), global average pool, flatten, dense(1). float32, NNGP and NTK, standard
normal inputs (seed 0).

Measured per point: the first call (compiles), then the best of ``--repeats`` compiled calls,
t. The pairs a call computes are kernelc's (``kernelc.explain.gram_pairs``): N(N−1)/2 cross
pairs (identity (S)) plus the N self pairs, so pairs/s = (N(N−1)/2 + N) / t; compile s = first
call − t (``kernelc.compile`` of the spec excluded).

Projection: (1) from the throughput measured here on N = ``--n`` 14 × 14 p4m images,
(10⁴·(10⁴−1)/2 + 10⁴) / (pairs/s), the driver's tiling and padding ignored; (2) kernelc's
own estimate, ``explain(n=10000, calibrate=True)`` (docs/performance.md, "Time estimates"):
it times one tile of the full run's plan and counts the padded last tile.

    python benchmarks/scale.py [--ns 4,8,16] [--sides 8,12,16,24] [--groups Z2,p4,p4m]
                               [--n 8] [--side 16] [--repeats 2] [--project-n 10000]
                               [--no-explain]
"""
from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np

import kernelc
from kernelc.errors import KernelcWarning
from kernelc.explain import format_seconds, gram_pairs  # explain's own duration format

from networks import B_STD, CNN, GCNN, W_STD

def spec(group, side, channels=3):
    return (CNN if group == "Z2" else GCNN).format(name=f"scale_{group}", g=group, s=side,
                                                   c=channels, w=W_STD, b=B_STD)


def measure(model, n, side, channels, repeats):
    """(best compiled seconds, compile seconds, pairs computed) of one N × N Gram matrix."""
    x = np.random.default_rng(0).normal(size=(n, side, side, channels)).astype(np.float32)
    times = []
    with warnings.catch_warnings():  # precision warnings about random inputs are not the point
        warnings.simplefilter("ignore", KernelcWarning)
        for _ in range(1 + repeats):
            start = time.perf_counter()
            model.kernel_fn(x, dtype="float32", progress=False)
            times.append(time.perf_counter() - start)
    best = min(times[1:])
    return best, max(times[0] - best, 0.0), sum(gram_pairs(n, True))


def row(label, group, side, n, channels, repeats):
    model = kernelc.compile(spec(group, side, channels))
    best, compile_s, pairs = measure(model, n, side, channels, repeats)
    print(f"{label:<8} {group:<5} {side:>4} {n:>5} {pairs:>6} {best:9.3f} {pairs / best:9.1f} "
          f"{compile_s:9.1f}", flush=True)
    return pairs / best


def header(title):
    print(f"\n{title}\n{'sweep':<8} {'group':<5} {'side':>4} {'N':>5} {'pairs':>6} "
          f"{'best s':>9} {'pairs/s':>9} {'compile s':>9}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ns", default="4,8,16", help="N values of the N sweep (p4, --side)")
    ap.add_argument("--sides", default="8,12,16,24", help="image sides of the side sweep (p4)")
    ap.add_argument("--groups", default="Z2,p4,p4m",
                    help="groups of the group sweep (any the DSL takes with lift/gconv of size "
                         "3, e.g. C8, D8)")
    ap.add_argument("--n", type=int, default=8, help="N of the side, group and projection runs")
    ap.add_argument("--side", type=int, default=16, help="image side of the N and group sweeps")
    ap.add_argument("--repeats", type=int, default=2, help="compiled calls per point (best)")
    ap.add_argument("--project-n", type=int, default=10000, help="N of the projection")
    ap.add_argument("--project-side", type=int, default=14, help="image side of the projection")
    ap.add_argument("--project-channels", type=int, default=1,
                    help="channels of the projection's images")
    ap.add_argument("--no-explain", action="store_true",
                    help="skip explain(calibrate=True) (it compiles the full run's tile shape)")
    args = ap.parse_args(argv)
    import jax
    print(f"JAX {jax.__version__} on {jax.default_backend()}, {os.cpu_count()} CPUs, load "
          f"average {os.getloadavg()[0]:.1f} at the start; float32, NNGP + NTK, best of "
          f"{args.repeats} compiled calls")
    header(f"vs N (p4, {args.side}×{args.side}×3)")
    for n in map(int, args.ns.split(",")):
        row("N", "p4", args.side, n, 3, args.repeats)
    header(f"vs image side (p4, N = {args.n}, 3 channels)")
    for side in map(int, args.sides.split(",")):
        row("side", "p4", side, args.n, 3, args.repeats)
    header(f"vs group (N = {args.n}, {args.side}×{args.side}×3)")
    for group in args.groups.split(","):
        row("group", group, args.side, args.n, 3, args.repeats)

    s, c, big = args.project_side, args.project_channels, args.project_n
    header(f"projection: {big:,} × {big:,} Gram matrix of {s}×{s}×{c} p4m images")
    rate = row("project", "p4m", s, args.n, c, args.repeats)
    total = sum(gram_pairs(big, True))
    print(f"from the measured throughput: {total:,} pairs / {rate:.1f} pairs/s = "
          f"{format_seconds(total / rate)} (one process, this machine; tiling ignored)")
    if not args.no_explain:
        text = kernelc.compile(spec("p4m", s, c)).explain(n=big, calibrate=True)
        for line in text.splitlines():
            if "tile:" in line or "calibrated" in line:
                print("kernelc explain --calibrate:", line.strip())
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
