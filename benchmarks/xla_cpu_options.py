"""XLA's CPU compile options for kernelc's passes (driver.CPU_COMPILER_OPTIONS) vs XLA's
defaults, side by side.

Each measurement is a fresh process (so the first call includes every compilation) that
compiles one network, times its first NNGP+NTK Gram call (``first``: build + compile + one
run, minus one compiled run) and then ``--calls`` compiled calls; the two settings alternate
process by process (``--processes`` each) so that machine noise hits both alike. Prints the
best and median compiled call, the median first call and process-CPU time per setting, the
ratios (defaults / kernelc's options: above 1 means the options are faster) and the largest
relative difference of the Gram matrices between the settings.

Networks: the peers' p4 GCNN and CNN-GAP (benchmarks/networks.py, N = 8 images 16×16×3)
and bundled specs of the other families (SO(3), steerable C8, O on a 3-d box).

    python benchmarks/xla_cpu_options.py [--networks p4,cnn_gap,so3_atom,mnist_c8,o3d_volume]
                                         [--n 8] [--processes 3] [--calls 3]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from networks import B_STD, CNN, GCNN, W_STD  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PEERS = {"p4": GCNN.replace("{g}", "p4").replace("{name}", "xla_p4"),
         "cnn_gap": CNN.replace("{name}", "xla_cnn_gap")}


def side(network, options, n, calls, gram):
    """One process: prints a JSON line of its timings, writes the last Gram matrices."""
    import kernelc
    from kernelc.runtime import driver
    if options == "defaults":
        driver.CPU_COMPILER_OPTIONS.clear()
    t0, c0 = time.perf_counter(), time.process_time()
    if network in PEERS:
        net = kernelc.compile(PEERS[network].format(s=16, c=3, w=W_STD, b=B_STD))
    else:
        net = kernelc.compile(ROOT / "specs" / f"{network}.kc")
    shape = net.typed.spec.input.shape + (net.typed.spec.input.channels,)
    x = np.random.default_rng(0).normal(size=(n,) + shape).astype(np.float32)
    walls = []
    for _ in range(1 + calls):
        t = time.perf_counter()
        k = net.kernel_fn(x, get=("nngp", "ntk"), progress=False)
        walls.append(time.perf_counter() - t)
        if len(walls) == 1:
            first = time.perf_counter() - t0  # build, compilation and one run
    np.savez(gram, **k)
    print(json.dumps({"first": first - min(walls[1:]), "steady": walls[1:],
                      "cpu": time.process_time() - c0,
                      "unknown": sorted(driver.COMPILER_OPTIONS_UNKNOWN)}))


def measure(network, options, n, calls, gram):
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--side", options,
                           "--networks", network, "--n", str(n), "--calls", str(calls),
                           "--gram", gram], capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"{network} with {options} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--networks", default="p4,cnn_gap,so3_atom,mnist_c8,o3d_volume")
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--processes", type=int, default=3)
    ap.add_argument("--calls", type=int, default=3)
    ap.add_argument("--side", choices=("kernelc", "defaults"))
    ap.add_argument("--gram")
    a = ap.parse_args(argv)
    if a.side:
        return side(a.networks, a.side, a.n, a.calls, a.gram)
    from kernelc.runtime.driver import CPU_COMPILER_OPTIONS
    print(f"kernelc's options {CPU_COMPILER_OPTIONS} vs XLA's defaults; N = {a.n}, float32 "
          f"NNGP + NTK; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; "
          f"{a.processes} processes per setting, alternating, {a.calls} compiled calls each")
    with tempfile.TemporaryDirectory() as tmp:
        for network in a.networks.split(","):
            runs = {"kernelc": [], "defaults": []}
            grams = {s: os.path.join(tmp, f"{network}_{s}.npz") for s in runs}
            for _ in range(a.processes):
                for setting in runs:
                    runs[setting].append(measure(network, setting, a.n, a.calls,
                                                 grams[setting]))
            rows = {}
            print(f"\n== {network}\nsetting    best s  median s  first s  process CPU s")
            for setting, rs in runs.items():
                steady = [t for r in rs for t in r["steady"]]
                rows[setting] = (min(steady), float(np.median(steady)),
                                 float(np.median([r["first"] for r in rs])),
                                 float(np.median([r["cpu"] for r in rs])))
                print(f"{setting:<9} {rows[setting][0]:7.3f}  {rows[setting][1]:8.3f}  "
                      f"{rows[setting][2]:7.2f}  {rows[setting][3]:13.2f}")
            d, k = rows["defaults"], rows["kernelc"]
            ka, kb = np.load(grams["kernelc"]), np.load(grams["defaults"])
            diff = max(float(np.max(np.abs(ka[g] - kb[g])) / np.max(np.abs(kb[g])))
                       for g in ("nngp", "ntk"))
            unknown = runs["kernelc"][0]["unknown"]
            print(f"defaults / kernelc's options: steady best {d[0] / k[0]:.2f}x, median "
                  f"{d[1] / k[1]:.2f}x, first call {d[2] / k[2]:.2f}x, process CPU "
                  f"{d[3] / k[3]:.2f}x; max relative difference {diff:.1e}"
                  + (f"; options this jaxlib refused: {unknown}" if unknown else ""))


if __name__ == "__main__":
    main()
