"""kernelc side by side with its peers: neural-tangents and the authors' p4 code (issue 16, item 5).

Two workloads, both float32, the NNGP and the NTK of one N × N Gram matrix (defaults N = 8
images 16 × 16 × 3, standard normal, seed 0; the same inputs for both sides):

* ``p4``: the paper's p4 network, lift 3×3, relu, 2 × (gconv 3×3, relu), group pool, dense(1);
  kernelc against the authors' code of "Equivariant Neural Tangent Kernels" (Misof, Kessel,
  Gerken, ICML 2025; https://github.com/PhilippMisofCH/equivariant-ntk, package
  ``equivariant_ntk``, layers ``Z2ConvP4``, ``P4ConvP4``, ``GroupPool`` on neural-tangents);
* ``cnn_gap``: the plain CNN of the same shape with global average pooling, conv 3×3, relu,
  2 × (conv 3×3, relu), global average pool, dense(1); kernelc against neural-tangents
  (``stax.Conv(..., padding='SAME')``, ``stax.Relu``, ``stax.GlobalAvgPool``, ``stax.Dense``).

Same hyperparameters on both sides: every conv/lift/gconv W_std = 1.4, b_std = 0.1, 'same'
(zero) padding, NTK parameterization; the dense layer W_std = 1, no bias. The peers' kernel
functions are jitted (``jax.jit(kernel_fn, static_argnames='get')``, their documented use).

The peers pin jax < 0.5.3 and numpy < 2, so they live in an environment of their own::

    python -m venv /tmp/authors_venv
    /tmp/authors_venv/bin/pip install "jax<0.5.3" "numpy<2" neural-tangents
    git clone https://github.com/PhilippMisofCH/equivariant-ntk /tmp/equivariant-ntk
    /tmp/authors_venv/bin/pip install --no-deps -e /tmp/equivariant-ntk

and that python is passed as ``--peer-python``. Each measurement is a fresh process (kernelc's
with this python, the peer's with ``--peer-python``; this file needs only numpy on the peer's
side); the two sides alternate (kernelc, peer, kernelc, peer, ... ``--repeats`` times each) so
they share the same window of a noisy machine. When a peer does not import with that python its
half is skipped with a message saying why (exit status 0) and kernelc's half still runs.

In each process, after the imports: ``build`` (kernelc: ``kernelc.compile(spec)``; the peer:
``stax.serial`` and ``jax.jit``), one first call (it compiles), then ``--calls`` compiled
calls. Reported per side, over all its processes: steady time = the best and the median of
the compiled calls (wall, and CPU time of the process, ``time.process_time()``, all threads);
compile time = build + first call − the best compiled call of that process (median over
processes; "of it build s" the build's median). The ratios are peer / kernelc.

Agreement: the Gram matrices of the last process of each side, max |A − B| / max |B| (B the
peer's). The authors' C4 lift ``Z2ConvP4`` sets the NTK to 2K − σ_b² where Θ = K belongs (it
copies the input NNGP into the input NTK, which is zero; docs/math/rules.md, docs/so3.md): their NTK
is expected to differ from kernelc's, their NNGP to agree.

    python benchmarks/peers.py [--peer-python PATH] [--workloads p4,cnn_gap] [--n 8]
                               [--size 16] [--repeats 3] [--calls 3]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from networks import B_STD, CNN, GCNN, W_STD, import_failure

#: what each peer needs to import, per workload
PEER_IMPORTS = {"p4": "import neural_tangents, equivariant_ntk.layers",
                "p4_lift": "import neural_tangents, equivariant_ntk.layers",
                "cnn_gap": "import neural_tangents"}
PEER_NAMES = {"p4": "authors' equivariant_ntk", "cnn_gap": "neural-tangents"}
#: the issue's targets: peer / kernelc steady time
TARGETS = {"p4": 100, "cnn_gap": 8}

SPECS = {
    "p4": GCNN.replace("{g}", "p4").replace("{name}", "peers_p4"),
    # the fact check of the authors' lift: lift, group pool, dense (no relu)
    "p4_lift": """network peers_p4_lift
group p4
input {s} x {s} channels {c}
lift(size=3, W_std={w}, b_std={b}, padding=same)
group_pool
dense(1, W_std=1.0)
""",
    "cnn_gap": CNN.replace("{name}", "peers_cnn_gap"),
}


def peer_missing(python, workload):
    """Why the peer of ``workload`` does not import with the interpreter ``python`` (the last
    line of its error), or None when it does."""
    return import_failure(python, PEER_IMPORTS[workload])


# -- the two sides (each imported only in its own process) ----------------------------------
def build_kernelc(workload, size):
    """A callable x -> (nngp, ntk) of kernelc's network."""
    import kernelc
    model = kernelc.compile(SPECS[workload].format(s=size, c=3, w=W_STD, b=B_STD))

    def call(x):
        k = model.kernel_fn(x, get=("nngp", "ntk"), dtype="float32", progress=False)
        return np.asarray(k["nngp"]), np.asarray(k["ntk"])
    return call


def build_peer(workload, size):
    """A callable x -> (nngp, ntk) of the peer's jitted kernel function."""
    import jax
    from neural_tangents import stax
    if workload == "p4_lift":
        from equivariant_ntk.layers import GroupPool, Z2ConvP4
        layers = [Z2ConvP4(1, (3, 3), padding="SAME", W_std=W_STD, b_std=B_STD), GroupPool(),
                  stax.Dense(1, W_std=1.0)]
    elif workload == "p4":
        from equivariant_ntk.layers import GroupPool, P4ConvP4, Z2ConvP4
        layers = [Z2ConvP4(1, (3, 3), padding="SAME", W_std=W_STD, b_std=B_STD), stax.Relu()]
        for _ in range(2):
            layers += [P4ConvP4(1, (3, 3), padding="SAME", W_std=W_STD, b_std=B_STD),
                       stax.Relu()]
        layers += [GroupPool(), stax.Dense(1, W_std=1.0)]
    else:
        layers = [stax.Conv(1, (3, 3), padding="SAME", W_std=W_STD, b_std=B_STD), stax.Relu()]
        for _ in range(2):
            layers += [stax.Conv(1, (3, 3), padding="SAME", W_std=W_STD, b_std=B_STD),
                       stax.Relu()]
        layers += [stax.GlobalAvgPool(), stax.Dense(1, W_std=1.0)]
    kernel_fn = jax.jit(stax.serial(*layers)[2], static_argnames="get")

    def call(x):
        nngp, ntk = jax.block_until_ready(kernel_fn(x, None, get=("nngp", "ntk")))
        return np.asarray(nngp).reshape(x.shape[0], x.shape[0]), \
            np.asarray(ntk).reshape(x.shape[0], x.shape[0])
    return call


def side(which, workload, inputs, calls, gram):
    """One process's measurement: prints a JSON line, writes the last Gram matrices to
    ``gram`` (.npz)."""
    x = np.load(inputs)
    # the imports are not the build: each side's packages are loaded before the clock starts
    __import__("kernelc" if which == "kernelc" else "neural_tangents")
    if which == "peer" and workload.startswith("p4"):
        __import__("equivariant_ntk.layers")
    cpu0, t0 = time.process_time(), time.perf_counter()
    call = (build_kernelc if which == "kernelc" else build_peer)(workload, x.shape[1])
    build = time.perf_counter() - t0
    walls, cpus = [], []
    for _ in range(1 + calls):
        c, t = time.process_time(), time.perf_counter()
        nngp, ntk = call(x)
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    np.savez(gram, nngp=nngp, ntk=ntk)
    print(json.dumps({"build": build, "first": walls[0], "steady": walls[1:],
                      "first_cpu": cpus[0], "steady_cpu": cpus[1:],
                      "process_cpu": time.process_time() - cpu0}))


def measure(python, which, workload, inputs, calls, gram):
    """The JSON line a fresh ``python`` running this script's ``--side which`` prints."""
    proc = subprocess.run([python, os.path.abspath(__file__), "--side", which,
                           "--workload", workload, "--inputs", inputs, "--calls", str(calls),
                           "--gram", gram], capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"the {which} side of {workload} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def summary(runs):
    """best / median steady wall and CPU seconds over all compiled calls of all processes, and
    the median compile time (build + first call − that process's best compiled call)."""
    steady = [t for r in runs for t in r["steady"]]
    cpu = [t for r in runs for t in r["steady_cpu"]]
    compile_s = [r["build"] + r["first"] - min(r["steady"]) for r in runs]
    return {"best": min(steady), "median": statistics.median(steady), "cpu_best": min(cpu),
            "cpu_median": statistics.median(cpu), "compile": statistics.median(compile_s),
            "build": statistics.median(r["build"] for r in runs)}


def relative_difference(a, b):
    """max |a − b| / max |b|: b's scale, so entries near zero do not inflate it."""
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def lift_fact(python, inputs, tmp):
    """The authors' C4 lift's NTK is 2K − σ_b² where Θ = K belongs. On lift -> group pool ->
    dense(1, W_std = 1, no bias), every layer linear, Θ = K_pool + Θ_pool with Θ_pool the mean of
    the lift's NTK: kernelc (Θ_lift = K_lift) gives Θ = 2 K_pool, the bug 3 K_pool − σ_b², so
    theirs = 1.5 Θ_kernelc − σ_b². Prints both differences (one process per side, one call)."""
    grams = {}
    for name, exe in (("kernelc", sys.executable), ("peer", python)):
        grams[name] = os.path.join(tmp, f"p4_lift_{name}.npz")
        measure(exe, name, "p4_lift", inputs, 0, grams[name])
    a, b = np.load(grams["kernelc"]), np.load(grams["peer"])
    print(f"their lift (lift -> group pool -> dense): NNGP difference "
          f"{relative_difference(a['nngp'], b['nngp']):.1e}; NTK: theirs vs kernelc's "
          f"{relative_difference(a['ntk'], b['ntk']):.1e}, theirs vs 1.5 kernelc's - b² "
          f"(the 2K - b² lift) {relative_difference(1.5 * a['ntk'] - B_STD ** 2, b['ntk']):.1e}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--peer-python", default=sys.executable,
                    help="the python of an environment where neural-tangents and the authors' "
                         "equivariant_ntk import (default: this one)")
    ap.add_argument("--workloads", default="p4,cnn_gap", help="comma-separated: p4, cnn_gap")
    ap.add_argument("--n", type=int, default=8, help="inputs of the Gram matrix")
    ap.add_argument("--size", type=int, default=16, help="image side")
    ap.add_argument("--repeats", type=int, default=3, help="processes per side, alternating")
    ap.add_argument("--calls", type=int, default=3, help="compiled calls per process")
    ap.add_argument("--side", choices=("kernelc", "peer"), help=argparse.SUPPRESS)
    ap.add_argument("--workload", help=argparse.SUPPRESS)
    ap.add_argument("--inputs", help=argparse.SUPPRESS)
    ap.add_argument("--gram", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.side:
        return side(args.side, args.workload, args.inputs, args.calls, args.gram)
    if args.repeats < 1 or args.calls < 1:
        ap.error("--repeats and --calls must be at least 1 (the steady time is a compiled call)")
    workloads = args.workloads.split(",")
    unknown = [w for w in workloads if w not in TARGETS]
    if unknown:
        ap.error(f"unknown workload(s) {unknown}; choose from {sorted(TARGETS)}")
    python = args.peer_python
    print(f"N = {args.n} images {args.size}×{args.size}×3, float32, NNGP + NTK; {os.cpu_count()} "
          f"CPUs, load average {os.getloadavg()[0]:.1f} at the start; {args.repeats} processes "
          f"per side, alternating, {args.calls} compiled calls each")
    with tempfile.TemporaryDirectory() as tmp:
        inputs = os.path.join(tmp, "x.npy")
        x = np.random.default_rng(0).normal(size=(args.n, args.size, args.size, 3))
        np.save(inputs, x.astype(np.float32))
        for workload in workloads:
            missing = peer_missing(python, workload)
            print(f"\n== {workload}: kernelc vs {PEER_NAMES[workload]}", flush=True)
            if missing:
                print(f"SKIPPED the peer's half: {PEER_NAMES[workload]} does not import with "
                      f"{python} ({missing}). The peers pin jax < 0.5.3 and numpy < 2: install "
                      "them in an environment of their own (this file's docstring, "
                      "docs/performance.md) and pass that python as --peer-python. kernelc's "
                      "half only:", flush=True)
            sides = [("kernelc", sys.executable)] + ([] if missing else [("peer", python)])
            runs = {name: [] for name, _ in sides}
            grams = {name: os.path.join(tmp, f"{workload}_{name}.npz") for name, _ in sides}
            for _ in range(args.repeats):
                for name, exe in sides:  # alternate: the sides share the machine's window
                    runs[name].append(measure(exe, name, workload, inputs, args.calls,
                                              grams[name]))
            stats = {name: summary(r) for name, r in runs.items()}
            print(f"{'side':<9} {'best s':>8} {'median s':>9} {'CPU best s':>11} "
                  f"{'CPU median s':>13} {'compile s':>10} {'of it build s':>14}")
            for name, s in stats.items():
                print(f"{name:<9} {s['best']:8.3f} {s['median']:9.3f} {s['cpu_best']:11.3f} "
                      f"{s['cpu_median']:13.3f} {s['compile']:10.2f} {s['build']:14.2f}")
            if missing:
                continue
            ours, theirs = stats["kernelc"], stats["peer"]
            print(f"peer / kernelc: steady best {theirs['best'] / ours['best']:.1f}×, median "
                  f"{theirs['median'] / ours['median']:.1f}×, CPU best "
                  f"{theirs['cpu_best'] / ours['cpu_best']:.1f}× (target ≥ "
                  f"{TARGETS[workload]}×); compile {theirs['compile'] / ours['compile']:.2f}×")
            a, b = np.load(grams["kernelc"]), np.load(grams["peer"])
            print(f"agreement, max |kernelc - peer| / max |peer|: NNGP "
                  f"{relative_difference(a['nngp'], b['nngp']):.1e}, NTK "
                  f"{relative_difference(a['ntk'], b['ntk']):.1e}"
                  + ("  (their Z2ConvP4 lift's NTK is 2K - b² instead of K: the NTK differs)"
                     if workload == "p4" else ""))
            if workload == "p4":
                lift_fact(python, inputs, tmp)
    print(f"\nload average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
