"""The memory budget is a limit (issue 12, item 1): a process that computes a Gram matrix under
``max_memory`` stays within 1.2x of it, measured.

Method (also ``benchmarks/memory.py``): in a fresh subprocess, after the imports and
``plan_memory(..., compiled=True)`` for the request (which compiles the tile shapes the run
uses: XLA's compiler and code are outside the budget, see docs/performance.md), reset the
kernel's peak resident memory to the current one (``/proc/self/clear_refs``: 5), read the
resident memory (``/proc/self/statm``) as the baseline; run ``kernel_fn(x, max_memory=BUDGET)``;
the measured peak is the peak resident memory (``VmHWM`` in ``/proc/self/status``) minus that
baseline. The run must set the high-water mark (so no earlier transient hides it) and the
budget must bind (the tile is smaller than without it), so the check is not vacuous.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUDGET = 100_000_000  # binds on 70 inputs: a tile of 96 is predicted at ~124 MB, of 64 at 83 MB

SCRIPT = r"""
import json, sys
import numpy as np
import kernelc

from kernelc.hostmem import peak_resident_bytes as high_water, reset_peak as reset_high_water, resident_bytes as resident

budget = int(sys.argv[1])
net = kernelc.compile(open("specs/p2_small.kc").read())
n = 70  # 2,415 pairs: tiles of 64 under the budget, of 96 without it (the tiles hold as many
# pairs as the self pass holds inputs). The tiles must dominate the run's memory: XLA:CPU's
# runtime and the allocator add ~30-40 MB that no plan models (20 MB budgets ran 3x over,
# before the one-pass driver too), hence p2_small's ~1.3 MB per pair, not mnist_p4's 0.2 MB.
# NNGP only, without the float32 precision check: a third of the operations to compile
kw = dict(get="nngp", check_precision=False)
x = np.random.default_rng(0).normal(size=(n,) + tuple(net.module.INPUT_SHAPE))
free = net.module.plan_memory(n, None, "float32", "100GB", True, **kw)
plan = net.module.plan_memory(n, None, "float32", budget, True, compiled=True, **kw)
reset = reset_high_water()
base = resident()
before = high_water()
net.kernel_fn(x, max_memory=budget, progress=False, **kw)
peak = high_water()
json.dump({"measured": peak - base, "earlier_peak": before - base, "tile": plan["tile_pairs"],
           "reset": reset,
           "free_tile": free["tile_pairs"], "predicted": plan["peak_bytes"]}, sys.stdout)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self/statm: Linux")
def test_a_run_under_a_budget_stays_within_it():
    env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu")
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(BUDGET)], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout)
    assert out["tile"] < out["free_tile"]  # the budget binds: 64 pairs instead of 96
    assert out["predicted"] <= BUDGET
    # the run set the high-water mark (reset after the compilation, else an earlier one)
    assert out["measured"] > out["earlier_peak"], out
    assert out["measured"] <= 1.2 * BUDGET, out
