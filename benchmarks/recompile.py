"""A learning-curve loop, N = 20, 19, ..., 15: compilations and seconds per call (issue 12,
item 3: tiles padded to a few sizes, so a new N reuses the compiled passes).

    python benchmarks/recompile.py [--spec specs/mnist_p4.kc] [--n 20 19 18 17 16 15]

Prints, per N, the pairs, the tile size (inputs of the self pairs' tiles and pairs of the Gram
tiles: one compiled pass serves both), the XLA compilations during the call and its wall time.
"""
from __future__ import annotations

import argparse
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", default="specs/mnist_p4.kc")
    ap.add_argument("--n", type=int, nargs="+", default=[20, 19, 18, 17, 16, 15])
    ap.add_argument("--dtype", default="float32")
    a = ap.parse_args()
    import numpy as np
    import kernelc
    from kernelc.runtime.driver import Placement

    net = kernelc.compile(open(a.spec).read())
    x = np.random.default_rng(0).normal(size=(max(a.n),) + tuple(net.module.INPUT_SHAPE))
    pass_fn = net.kernel_fn.compiled_passes[True, True, None]  # self pairs and Gram tiles
    one = Placement()
    print(f"{a.spec}, {a.dtype}, NNGP+NTK")
    print("   N   pairs  tile  compilations  seconds")
    for n in a.n:
        before = pass_fn.compilations
        start = time.perf_counter()
        net.kernel_fn(x[:n], dtype=a.dtype, progress=False)
        seconds = time.perf_counter() - start
        pairs = n * (n - 1) // 2
        tile = net.module.plan_memory(n, None, a.dtype, compiled=True)["tile_pairs"]  # compiled
        print(f"{n:4d} {pairs:7d} {one.tile(tile, n):5d} {pass_fn.compilations - before:13d} "
              f"{seconds:8.2f}", flush=True)


if __name__ == "__main__":
    main()
