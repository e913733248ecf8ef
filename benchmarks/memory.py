"""Predicted vs measured peak memory of ``kernel_fn`` under a budget (issue 12, item 1).

    python benchmarks/memory.py [--budget 300MB] [--dtype float32]
                                [SPEC:N ...]   (default: three bundled specs)

Each measurement runs in a fresh Python process (its own peak), the method of
``tests/runtime/test_memory.py``: compile the spec; ``plan_memory(N, ..., compiled=True)`` for
the request, which compiles the tile shapes the run uses (XLA's compiler and compiled code are
not in the budget: reported apart, as the growth of the resident memory over this step); read
the resident memory (``/proc/self/statm``) as the baseline after resetting the kernel's peak
to it (``/proc/self/clear_refs``: 5); call ``kernel_fn(x, max_memory=BUDGET)`` on N random
inputs; the measured peak is the peak resident memory (``VmHWM``, ``/proc/self/status``)
minus the baseline. The predicted peak is the plan's ``peak_bytes`` (the driver's
buffers plus XLA's ``memory_analysis`` of the compiled tile). Prints one line per spec and a
Markdown table.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ["specs/mnist_p4.kc:100", "specs/p2_small.kc:100", "specs/p6_hexagonal.kc:100"]

CHILD = r"""
import json, sys, time
import numpy as np
import kernelc
spec, n, budget, dtype = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]

from kernelc.hostmem import peak_resident_bytes as high_water, reset_peak as reset_high_water, resident_bytes as resident

net = kernelc.compile(open(spec).read())
x = np.random.default_rng(0).normal(size=(n,) + tuple(net.module.INPUT_SHAPE))
free = net.module.plan_memory(n, None, dtype, "1TB", True)  # the model's tile without a budget
start_rss = resident()
plan = net.module.plan_memory(n, None, dtype, budget, True, compiled=True)
reset_high_water()
base = resident()
before = high_water()
start = time.perf_counter()
net.kernel_fn(x, dtype=dtype, max_memory=budget, progress=False)
seconds = time.perf_counter() - start
peak = high_water()
json.dump({"measured": peak - base, "earlier_peak": before - base, "compile": base - start_rss,
           "baseline": base, "seconds": seconds, "free_tile": free["tile_pairs"],
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
        print(f"{spec} N={n} ({r['pairs']} pairs): budget {r['budget'] / mib:.0f} MiB, tile "
              f"{r['tile_pairs']} pairs ({r['free_tile']} without it); predicted peak "
              f"{r['peak_bytes'] / mib:.0f} MiB (driver {r['driver_bytes'] / mib:.1f} + tile "
              f"{r['tile_bytes'] / mib:.0f}); measured {r['measured'] / mib:.0f} MiB (earlier "
              f"peak {r['earlier_peak'] / mib:.0f}); compiling the tiles "
              f"+{r['compile'] / mib:.0f} MiB; run {r['seconds']:.1f} s", flush=True)
    print("\n| spec | N (pairs) | budget | tile (pairs) | predicted peak | measured peak | "
          "measured / budget | compiling the tiles (not in the budget) |\n"
          "|---|---|---|---|---|---|---|---|")
    for spec, n, r in rows:
        print(f"| {Path(spec).stem} | {n} ({r['pairs']:,}) | {r['budget'] / mib:.0f} MiB | "
              f"{r['tile_pairs']} | {r['peak_bytes'] / mib:.0f} MiB | "
              f"{r['measured'] / mib:.0f} MiB | {r['measured'] / r['budget']:.2f} | "
              f"+{r['compile'] / mib:.0f} MiB |")


if __name__ == "__main__":
    main()
