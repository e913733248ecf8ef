"""Gram-matrix throughput on one device vs split over all local devices, side by side.

    python benchmarks/devices.py [--n 16] [--size 10] [--repeats 3] [--force-host-devices K]

``--force-host-devices K`` makes XLA expose K CPU devices (set before JAX starts); on a GPU
node the devices are the GPUs. Each repeat times the p4 network (lift 3x3, relu, gconv 3x3,
relu, group pool, dense; NNGP+NTK, float32) once on the first device and once on all of
them, alternately; prints median times, pairs/s and the ratio.
"""
from __future__ import annotations

import argparse
import os
import sys
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--size", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--force-host-devices", type=int, default=None)
    a = ap.parse_args()
    if a.force_host_devices:
        if "jax" in sys.modules:
            raise SystemExit("--force-host-devices must be set before JAX is imported")
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                                   f" --xla_force_host_platform_device_count={a.force_host_devices}")
    import jax
    import numpy as np
    import kernelc

    spec = (f"network bench\ngroup p4\ninput {a.size} x {a.size} channels 3\n"
            "lift(size=3, W_std=1.4, b_std=0.1)\nrelu\ngconv(size=3, W_std=1.4, b_std=0.1)\n"
            "relu\ngroup_pool\ndense(1)\n")
    net = kernelc.compile(spec)
    x = np.random.default_rng(0).normal(size=(a.n, a.size, a.size, 3))
    devices = jax.local_devices()
    settings = {"1 device": [devices[0]], f"{len(devices)} devices": devices}
    times = {name: [] for name in settings}
    for name, devs in settings.items():  # compile both first
        net.kernel_fn(x, devices=devs)
    for _ in range(a.repeats):
        for name, devs in settings.items():
            start = time.perf_counter()
            net.kernel_fn(x, devices=devs)
            times[name].append(time.perf_counter() - start)
    pairs = a.n * (a.n - 1) // 2 + a.n
    print(f"{jax.default_backend()}: {len(devices)} device(s) {devices[0].device_kind}; "
          f"N = {a.n}, {a.size}x{a.size}x3, {pairs} pairs")
    med = {name: float(np.median(t)) for name, t in times.items()}
    for name, t in med.items():
        print(f"  {name:<12} {t:8.3f} s  {pairs / t:10.1f} pairs/s")
    one, many = med.values()
    print(f"  ratio (all / one device throughput): {one / many:.2f}x")


if __name__ == "__main__":
    main()
