"""The stored throughput of ``kernelc explain``'s rough time estimate
(kernelc.explain.REFERENCE_FLOPS_PER_SECOND): FLOPs of the plan per second of ``kernel_fn``
wall time, NNGP and NTK, float32, measured per spec by the same calibration that
``explain --calibrate`` runs (kernelc.explain.calibrate_kernel: random inputs, one tile of at
most CALIBRATION_FLOPS, best of 2 compiled runs), and their median.

    python benchmarks/throughput.py [SPEC ...]
"""
import argparse
import os
import statistics
import time

import jax

import kernelc
from kernelc.explain import CALIBRATION_FLOPS, calibrate_kernel, pair_cost

SPECS = ["specs/p2_small.kc", "specs/mnist_p4.kc", "specs/p4_histology.kc",
         "specs/cnn_histology.kc", "specs/p4m_mnist.kc"]


def main(specs):
    print(f"JAX {jax.__version__} on {jax.default_backend()}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f} at the start")
    print(f"{'spec':<16} {'MFLOP/pair':>11} {'pairs':>6} {'ms/pair':>9} {'GFLOP/s':>8} "
          f"{'compile s':>9}")
    rates = []
    for path in specs:
        net = kernelc.compile(path)
        flops = pair_cost(net.derivation)["flops"]
        symmetric = net.derivation.decisions["S"].applied
        tile = net.module.plan_memory(1000, None, "float32", None, symmetric)["tile_pairs"]
        sample = min(tile, max(3, int(CALIBRATION_FLOPS // flops)))
        cal = calibrate_kernel(net.kernel_fn, net.module.INPUT_SHAPE, sample,
                               symmetric=symmetric)
        rate = flops / cal["seconds_per_pair"]
        rates.append(rate)
        print(f"{net.spec.name:<16} {flops / 1e6:11.2f} {cal['pairs']:6d} "
              f"{cal['seconds_per_pair'] * 1e3:9.3f} {rate / 1e9:8.2f} "
              f"{cal['compile_seconds']:9.1f}", flush=True)
    print(f"median throughput: {statistics.median(rates) / 1e9:.2f} GFLOP/s; load average "
          f"{os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("specs", nargs="*", metavar="SPEC",
                        help="spec files to measure (default: " + ", ".join(SPECS) + ")")
    main(parser.parse_args().specs or SPECS)
