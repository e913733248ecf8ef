"""Kernel regression on a Gram matrix on disk by conjugate gradients (kernelc.methods.solvers).

Writes a synthetic N×N float32 Gram matrix (the arc-cosine/relu kernel of random 16-d inputs,
a wide-network kernel with the usual fast-decaying spectrum) to a memory-mapped .npy file by
blocks of rows, then solves (K + r·I) α = y for 10 right-hand sides, r = 1e-4 · mean diag K,
to relative residual 1e-6 and prints the times, iterations, passes over K and the peak RSS.
With ``--compare-dense`` (N that fits in memory) it also times the dense solver of ``kernelc
predict --solver dense`` (GradientFlowPredictor: the eigendecomposition of K + r·I in float64)
on the same problem, then prints the ratio of the wall times and the largest difference of the
kernel-regression predictions K[:100] α of the two, relative to the largest prediction.

    python benchmarks/cg_solver.py [--n 20000] [--folder /tmp/kernelc_cg] [--rank 200]
                                   [--compare-dense]
"""
from __future__ import annotations

import argparse
import os
import resource
import time

import numpy as np

from kernelc.methods.solvers import solve_regularised


def write_gram(path, n, rows=1024, seed=0):
    x = np.random.default_rng(seed).normal(size=(n, 16))
    norms = np.linalg.norm(x, axis=1)
    k = np.lib.format.open_memmap(path, "w+", np.float32, (n, n))
    for a in range(0, n, rows):
        b = min(a + rows, n)
        cos = np.clip(x[a:b] @ x.T / np.outer(norms[a:b], norms), -1, 1)
        theta = np.arccos(cos)
        k[a:b] = np.outer(norms[a:b], norms) * (np.sin(theta) + (np.pi - theta) * cos) / (2 * np.pi)
    k.flush()
    del k


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--folder", default="/tmp/kernelc_cg")
    ap.add_argument("--rank", type=int, default=200)
    ap.add_argument("--compare-dense", action="store_true",
                    help="also time the dense eigendecomposition solver (K in memory)")
    a = ap.parse_args()
    os.makedirs(a.folder, exist_ok=True)
    path = os.path.join(a.folder, f"gram_{a.n}.npy")
    start = time.perf_counter()
    if not os.path.exists(path):
        write_gram(path, a.n)
    written = time.perf_counter() - start
    k = np.load(path, mmap_mode="r")
    y = np.random.default_rng(1).normal(size=(a.n, 10))
    shift = 1e-4 * float(np.mean(np.diagonal(k)))
    start, cpu = time.perf_counter(), time.process_time()
    result = solve_regularised(k, y, shift, tol=1e-6, rank=a.rank)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
    print(f"N = {a.n}: Gram {a.n * a.n * 4 / 2 ** 30:.2f} GiB on disk (written in {written:.0f} s)")
    print(f"  CG to 1e-6: {wall:.1f} s wall, {cpu:.1f} s CPU; {result.iterations} iterations, "
          f"{result.passes} passes over K, preconditioner rank {result.rank}, "
          f"max residual {result.residuals.max():.1e}; peak RSS {peak:.2f} GiB")
    if a.compare_dense:
        from kernelc.methods.predict import GradientFlowPredictor
        start, cpu_d = time.perf_counter(), time.process_time()
        dense = GradientFlowPredictor(np.asarray(k, np.float64), y, diag_reg=1e-4)
        f_dense = dense.mean(k[:100])
        dense_wall = time.perf_counter() - start
        cpu_d = time.process_time() - cpu_d
        f_cg = np.asarray(k[:100], np.float64) @ result.alpha
        diff = np.abs(f_cg - f_dense).max() / np.abs(f_dense).max()
        print(f"  dense (eigh, float64): {dense_wall:.1f} s wall, {cpu_d:.1f} s CPU; "
              f"dense / CG wall {dense_wall / wall:.2f}x; max |f_cg − f_dense| / max |f_dense| "
              f"{diff:.1e}")


if __name__ == "__main__":
    main()
