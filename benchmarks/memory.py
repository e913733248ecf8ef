"""Predicted vs measured peak memory of ``kernel_fn`` under a budget (issue 12, item 1).

    python benchmarks/memory.py [--budget 300MB] [--dtype float32]
                                [SPEC:N ...]   (default: three bundled specs)

Each measurement runs in a fresh Python process: it compiles the spec, warms up on 2 inputs
(imports, JAX's runtime, the first compilations), reads its resident memory (``/proc/self/
statm``: the baseline), then calls ``kernel_fn(x, max_memory=BUDGET)`` on N random inputs (the
memory plan, the compilation of the tile shapes it picks, the passes, the Gram matrices) and
reads the peak resident memory (``getrusage(RUSAGE_SELF).ru_maxrss``). The measured peak is
the peak minus the baseline; the predicted peak is ``plan_memory(..., compiled=True)``'s
``peak_bytes`` for the same call (the driver's buffers plus XLA's report of the compiled
tile). Prints one row per spec and a Markdown table.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ["specs/mnist_p4.kc:300", "specs/p2_small.kc:300", "specs/p6_hexagonal.kc:300"]

CHILD = r"""
import json, resource, sys, time
import numpy as np
import kernelc
spec, n, budget, dtype = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]

def resident():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()

net = kernelc.compile(open(spec).read())
x = np.random.default_rng(0).normal(size=(n,) + tuple(net.module.INPUT_SHAPE))
net.kernel_fn(x[:2], dtype=dtype, progress=False)  # warm-up: imports, runtime, first compiles
base = resident()
start = time.perf_counter()
net.kernel_fn(x, dtype=dtype, max_memory=budget, progress=False)
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
plan = net.module.plan_memory(n, None, dtype, budget, True, compiled=True)  # compiled: no new work
json.dump({"measured": peak - base, "baseline": base, "seconds": seconds,
           **{k: plan[k] for k in ("peak_bytes", "driver_bytes", "tile_bytes", "tile_pairs",
                                   "budget", "pairs")}}, sys.stdout)
"""


def measure(spec, n, budget, dtype):
    """One measurement in a fresh process (its own peak): the dict CHILD prints."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu")
    done = subprocess.run([sys.executable, "-c", CHILD, spec, str(n), budget, dtype], env=env,
                          capture_output=True, text=True, cwd=ROOT)
    if done.returncode:
        raise SystemExit(done.stderr[-3000:])
    return json.loads(done.stdout)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="*", default=DEFAULT, help="SPEC:N (default: three specs)")
    ap.add_argument("--budget", default="300MB")
    ap.add_argument("--dtype", default="float32")
    a = ap.parse_args()
    mib = 2 ** 20
    rows = []
    for run in a.runs:
        spec, n = run.rsplit(":", 1)
        r = measure(spec, int(n), a.budget, a.dtype)
        rows.append((spec, int(n), r))
        print(f"{spec} N={n}: budget {r['budget'] / mib:.0f} MiB, tile {r['tile_pairs']} pairs; "
              f"predicted peak {r['peak_bytes'] / mib:.0f} MiB (driver {r['driver_bytes'] / mib:.0f}"
              f" + tile {r['tile_bytes'] / mib:.0f}); measured {r['measured'] / mib:.0f} MiB "
              f"(baseline {r['baseline'] / mib:.0f} MiB); {r['seconds']:.1f} s", flush=True)
    print(f"\n| spec | N | budget | tile (pairs) | predicted peak | measured peak | measured / "
          f"budget |\n|---|---|---|---|---|---|---|")
    for spec, n, r in rows:
        print(f"| {Path(spec).stem} | {n} | {r['budget'] / mib:.0f} MiB | {r['tile_pairs']} | "
              f"{r['peak_bytes'] / mib:.0f} MiB | {r['measured'] / mib:.0f} MiB | "
              f"{r['measured'] / r['budget']:.2f} |")


if __name__ == "__main__":
    main()
