"""The float32 precision estimate on vs off (kernel_fn(check_precision=...)), side by side.

Times the NNGP+NTK Gram matrix of the same compiled network with the estimate
(kernelc.runtime.maps.track_precision after every nonlinearity, docs/precision.md) and
without it, alternating the two so that machine noise hits both alike; prints the median wall
and process-CPU times and their ratios. Networks: a p4 relu net (relu-like maps cost one
reduction per pair), the same with erf (per-entry windows) and a 10-layer erf MLP.

    python benchmarks/precision_check.py [--n 8] [--size 12] [--repeats 5]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import kernelc

P4 = """network bench_p4_{phi}
group p4
input {s} x {s} channels 3
lift(size=3, W_std=1.4, b_std=0.1)
{phi}
repeat 2 {{ gconv(size=3, W_std=1.4, b_std=0.1)  {phi} }}
group_pool
dense(1)
"""
MLP = ("network bench_mlp\ngroup Z2\ninput 5 x 1 channels 1\nflatten\n"
       + "dense(64, W_std=1.5, b_std=0.1)\nerf\n" * 10 + "dense(1)\n")


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def compare(name, spec, x, repeats):
    net = kernelc.compile(spec)
    runs = {True: [], False: []}
    for check in (True, False):  # compile both variants first
        net.kernel_fn(x, check_precision=check)
    for _ in range(repeats):
        for check in (True, False):
            runs[check].append(timed(lambda: net.kernel_fn(x, check_precision=check)))
    (w1, c1), (w0, c0) = (np.median(np.array(runs[c]), axis=0) for c in (True, False))
    print(f"{name:<14} without {w0:8.3f} s (CPU {c0:7.3f} s)  with {w1:8.3f} s "
          f"(CPU {c1:7.3f} s)  ratio wall {w1 / w0:5.2f}x  CPU {c1 / c0:5.2f}x")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--size", type=int, default=12)
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(a.n, a.size, a.size, 3))
    compare("p4 relu", P4.format(s=a.size, phi="relu"), x, a.repeats)
    compare("p4 erf", P4.format(s=a.size, phi="erf"), x, a.repeats)
    compare("erf MLP x10", MLP, rng.normal(size=(max(a.n, 64), 5, 1, 1)), a.repeats)


if __name__ == "__main__":
    main()
