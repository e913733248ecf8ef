"""Where a network's first call goes: kernelc.compile, tracing, lowering, XLA, the first runs.

    python benchmarks/first_call.py [--workloads cnn_gap,p4] [--n 8] [--size 16] [--repeats 3]

The peers' networks (benchmarks/networks.py: ``cnn_gap`` the CNN with global average pooling,
``p4`` the paper's GCNN), N images size×size×3, float32, NNGP + NTK; each repeat is a fresh
process (imports before the clock, as in benchmarks/peers.py). Per phase, the median over the
processes (seconds of wall time):

* build: ``kernelc.compile(spec)``;
* trace, lower: the kernel pass (one program for the self pairs and the Gram tiles), in the
  calling thread;
* XLA: its compilations, summed (one per tile size; they run in background threads:
  ``runtime.driver.CompiledPass``), and the time the call waited for them;
* first call: ``kernel_fn`` from its call to its return (it contains the three above and the
  passes' first runs); steady: the best of three more calls;
* compile: build + first call − steady, the peers benchmark's figure.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from networks import B_STD, CNN, GCNN, W_STD  # noqa: E402

SPECS = {"cnn_gap": CNN.replace("{name}", "first_call_cnn_gap"),
         "p4": GCNN.replace("{g}", "p4").replace("{name}", "first_call_p4")}
PHASES = ("build", "trace", "lower", "XLA", "waiting for XLA", "first call", "steady",
          "compile")


def side(workload, n, size):
    """One process: the phases of one first call (a JSON line on stdout)."""
    import numpy as np
    import jax
    import kernelc
    from kernelc.runtime import driver

    spent = dict.fromkeys(("trace+lower", "lower", "XLA", "executable", "nested"), 0.0)

    def timed(owner, name, into, nested=False):
        original = getattr(owner, name)

        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                spent[into] += time.perf_counter() - start
                if nested and depth[0]:
                    spent["nested"] += time.perf_counter() - start
        setattr(owner, name, wrapper)

    depth = [0]
    timed(jax.stages.Traced, "lower", "lower")
    timed(jax.stages.Lowered, "compile", "XLA")
    timed(driver.CompiledPass, "_compile", "trace+lower", nested=True)
    executable = driver.CompiledPass.executable

    def waited(self, *args):  # time in executable() less a trace it starts itself
        depth[0] += 1
        start = time.perf_counter()
        try:
            return executable(self, *args)
        finally:
            depth[0] -= 1
            spent["executable"] += time.perf_counter() - start
    driver.CompiledPass.executable = waited

    x = np.random.default_rng(0).normal(size=(n, size, size, 3)).astype("float32")
    start = time.perf_counter()
    net = kernelc.compile(SPECS[workload].format(s=size, c=3, w=W_STD, b=B_STD))
    build = time.perf_counter() - start

    def call():
        begin = time.perf_counter()
        k = net.kernel_fn(x, get=("nngp", "ntk"), dtype="float32", progress=False)
        np.asarray(k["ntk"])
        return time.perf_counter() - begin
    first = call()
    steady = min(call() for _ in range(3))
    print(json.dumps({"build": build, "trace": spent["trace+lower"] - spent["lower"],
                      "lower": spent["lower"], "XLA": spent["XLA"],
                      "waiting for XLA": spent["executable"] - spent["nested"],
                      "first call": first, "steady": steady,
                      "compile": build + first - steady}))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workloads", default="cnn_gap,p4")
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--size", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--side", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.side:
        return side(a.side, a.n, a.size)
    workloads = a.workloads.split(",")
    unknown = [w for w in workloads if w not in SPECS]
    if unknown or a.repeats < 1:
        ap.error(f"--workloads from {sorted(SPECS)}, --repeats ≥ 1 (got {a.workloads}, "
                 f"{a.repeats})")
    print(f"N = {a.n} images {a.size}×{a.size}×3, float32, NNGP + NTK; {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}; median of {a.repeats} fresh processes, "
          "seconds")
    print(f"{'workload':10s}" + "".join(f"{p:>17s}" for p in PHASES))
    for workload in workloads:
        runs = []
        for _ in range(a.repeats):
            proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--side", workload,
                                   "--n", str(a.n), "--size", str(a.size)],
                                  capture_output=True, text=True)
            if proc.returncode:
                sys.exit(f"the {workload} process failed:\n{proc.stderr[-3000:]}")
            runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(f"{workload:10s}" + "".join(f"{statistics.median(r[p] for r in runs):17.3f}"
                                          for p in PHASES), flush=True)


if __name__ == "__main__":
    main()
