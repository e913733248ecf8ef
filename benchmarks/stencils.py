"""Where a gconv layer's time goes, op by op, and the stencil forms side by side (issue 16, item 1).

One stage of the p4 network of benchmarks/identities.py in the (R) layout: relu (K⁺ and
Θ⁺ = K̇·Θ, the fast maps) followed by the 3×3 gconv's reduced stencil
K̃⁺[t,t'](q) = mean_{y∈S} K̃[t+y, t'+ρ(q)y](q), for K and for Θ; float32, ``--pairs`` pairs of
``--size``² images (16: the issue's 16×16, a tile of (pairs, 4, 16, 16, 16, 16)). Every
variant is timed in turn, ``--repeats`` times, best wall and median process CPU time; the
traffic counted is the compulsory one (each input read once, each output written once), so
"% copy" compares it with a plain elementwise op moving the same bytes (the copy bandwidth).
The map is also timed in the form the network writes it, one array [K⁺; Θ⁺], beside a plain op
with that same loop and traffic (two multiplications for the map): their difference is the
map's arithmetic, which the machine's floating-point throughput sets.

Stencil forms compared (all give the same numbers to float32 rounding, checked):

* ``per-q pads``: the runtime's ``reduced_stencil`` as the generated code calls it (one padded
  copy per q, |S| shifted slices summed, stacked);
* ``pad once``: one padded copy of the whole kernel, then the slices per q;
* ``separable``: the box S = {−1,0,1}² split into two 1-d passes of 3 terms (y₁ moves axis 1
  of the first slot and axis π(1) of the second, ρ(q) being a signed permutation), 6 terms
  instead of 9;
* ``K,Θ stacked``: K and Θ through one stencil call (concatenated on the pair axis), what
  the rewrite pass "one filter sum for K and Θ" (kernelc/compiler/passes.py) generates.

"map +" rows let XLA fuse as it likes; "map |" rows put an optimization barrier between the
map and the stencil (which XLA CPU removes before fusion: the rows agree with "map +").

Then, end to end: the p4 network of benchmarks/identities.py (``--n`` images 16×16×3, NNGP +
NTK Gram, float32) compiled with that pass and without it (removed from the pass table in
this process), alternated, and the largest difference of their float64 Gram matrices.

Every variant is compiled as the driver compiles the passes (runtime.driver.compile_lowered:
with CPU_COMPILER_OPTIONS on CPU), or with XLA's defaults under ``--xla-defaults``.

    python benchmarks/stencils.py [--pairs 32] [--size 16] [--repeats 5] [--n 8] [--xla-defaults]
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import jax
import jax.numpy as jnp

import kernelc
from kernelc.compiler import passes
from kernelc.runtime import driver
from kernelc.runtime.stencils import reduced_stencil

from fast_maps import map_inputs  # noqa: E402 - the same map and inputs as fast_maps.py
from fast_maps import relu_map as relu  # noqa: E402

ROTATIONS = [np.array(m) for m in ([[1, 0], [0, 1]], [[0, -1], [1, 0]], [[-1, 0], [0, -1]],
                                   [[0, 1], [-1, 0]])]
SUPPORT = [np.array((a, b)) for a in (-1, 0, 1) for b in (-1, 0, 1)]
TERMS = tuple(tuple((tuple(int(c) for c in y), tuple(int(c) for c in q @ y)) for y in SUPPORT)
              for q in ROTATIONS)
PADS = ((1, 1), (1, 1))


def per_q_pads(k, n):
    return reduced_stencil(k, TERMS, PADS, (n, n), "same")


def pad_once(k, n):
    padded = jnp.pad(k, [(0, 0), (0, 0)] + [(1, 1)] * 4)
    out = []
    for q, terms in enumerate(TERMS):
        acc = None
        for a, b in terms:
            part = padded[(slice(None), q) + tuple(slice(1 + o, 1 + o + n) for o in a + b)]
            acc = part if acc is None else acc + part
        out.append(acc / len(terms))
    return jnp.stack(out, 1)


def separable(k, n):
    """Σ_{y∈S₁×S₂} K[t+y, t'+Qy] = Σ_{y₂} (Σ_{y₁} K[...])[...]: one pass per component y_a,
    shifting axis a of the first slot and axis π(a) of the second by y_a and ±y_a."""
    padded = jnp.pad(k, [(0, 0), (0, 0)] + [(1, 1)] * 4)
    out = []
    for q, rho in enumerate(ROTATIONS):
        x = padded[:, q]  # (p, t1, t2, t1', t2')
        for a in range(2):
            target = int(np.flatnonzero(rho[:, a])[0])
            sign = int(rho[target, a])
            acc = None
            for y in (-1, 0, 1):
                index = [slice(None)] * 5
                index[1 + a] = slice(1 + y, 1 + y + n)
                index[3 + target] = slice(1 + sign * y, 1 + sign * y + n)
                part = x[tuple(index)]
                acc = part if acc is None else acc + part
            x = acc
        out.append(x / 9)
    return jnp.stack(out, 1)


def jit(fn):
    """``fn`` compiled on its first call as the driver compiles a pass (compile_lowered)."""
    compiled = {}

    def call(*args):
        if not compiled:
            compiled[0] = driver.compile_lowered(jax.jit(fn).trace(*args).lower(),
                                                 jax.tree_util.tree_leaves(args))
        return compiled[0](*args)
    return call


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=32)
    ap.add_argument("--size", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--n", type=int, default=8, help="images of the end-to-end p4 run")
    ap.add_argument("--xla-defaults", action="store_true",
                    help="compile with XLA's defaults, not the driver's CPU_COMPILER_OPTIONS")
    a = ap.parse_args(argv)
    if a.xla_defaults:
        driver.CPU_COMPILER_OPTIONS.clear()
    n = a.size
    k, k11, k22, t = map_inputs(a.pairs * 4 * n**4, side=n)
    km, tm = jit(relu)(k, k11, k22, t)
    entries = k.size
    barrier = jax.lax.optimization_barrier

    def stage(form, stacked=False, materialise=False):
        def run(k, k11, k22, t):
            kr, tr = relu(k, k11, k22, t)
            if materialise:  # the map's outputs written once, before any padding reads them
                kr, tr = barrier((kr, tr))
            if stacked:
                both = form(jnp.concatenate([kr, tr]), n)
                return both[:k.shape[0]], both[k.shape[0]:]
            return form(kr, n), barrier(form(tr, n))  # the generated code's barrier on Θ
        return jit(run)

    variants = {  # name: (function, arguments, bytes of compulsory traffic)
        "copy (2 in, 2 out)": (jit(lambda x, y: (x * 1.0001, y * 1.0001)), (k, t), 16),
        "relu map alone": (jit(relu), (k, k11, k22, t), 16),
        # the form the network writes: one array, as with_theta's stacked filter sum reads it
        "relu map alone, [K⁺; Θ⁺] stacked": (jit(lambda *a: jnp.concatenate(relu(*a))),
                                             (k, k11, k22, t), 16),
        # the same loop and traffic with two multiplications for the map: the floor of the row
        # above on this machine (the map's arithmetic is the difference)
        "plain op, [K⁺; Θ⁺] stacked": (
            jit(lambda k, a, b, t: jnp.concatenate([k * a * b, k * t])), (k, k11, k22, t), 16),
        "stencil alone, per-q pads": (jit(lambda x, y: (per_q_pads(x, n), barrier(
            per_q_pads(y, n)))), (km, tm), 16),
        "stencil alone, pad once": (jit(lambda x, y: (pad_once(x, n), barrier(
            pad_once(y, n)))), (km, tm), 16),
        "stencil alone, separable": (jit(lambda x, y: (separable(x, n), barrier(
            separable(y, n)))), (km, tm), 16),
        "map + stencil, per-q pads (two calls)": (stage(per_q_pads), (k, k11, k22, t), 16),
        "map + stencil, pad once": (stage(pad_once), (k, k11, k22, t), 16),
        "map + stencil, separable": (stage(separable), (k, k11, k22, t), 16),
        "map + stencil, K,Θ stacked": (stage(per_q_pads, True), (k, k11, k22, t), 16),
        "map | stencil, per-q pads": (stage(per_q_pads, materialise=True), (k, k11, k22, t), 16),
        "map | stencil, pad once": (stage(pad_once, materialise=True), (k, k11, k22, t), 16),
        "map | stencil, separable": (stage(separable, materialise=True), (k, k11, k22, t), 16),
        "map | stencil, K,Θ stacked": (stage(per_q_pads, True, True), (k, k11, k22, t), 16),
    }
    reference = variants["map + stencil, per-q pads (two calls)"][0](k, k11, k22, t)
    for name, (fn, args, _) in variants.items():
        out = jax.block_until_ready(fn(*args))
        if name.startswith("map "):
            err = max(float(jnp.max(jnp.abs(o - r)) / jnp.max(jnp.abs(r)))
                      for o, r in zip(out, reference))
            assert err < 1e-5, (name, err)
    times = {name: [] for name in variants}
    for _ in range(a.repeats):
        for name, (fn, args, _) in variants.items():
            wall, cpu = time.perf_counter(), time.process_time()
            jax.block_until_ready(fn(*args))
            times[name].append((time.perf_counter() - wall, time.process_time() - cpu))
    print(f"p4 gconv stage, {a.pairs} pairs of {n}×{n} images, tile {tuple(k.shape)} float32 "
          f"({entries:,} entries per array), {a.repeats} alternated runs; JAX {jax.__version__} "
          f"on {jax.devices()[0].platform}")
    copy_cpu = statistics.median(c for _, c in times["copy (2 in, 2 out)"])
    print(f"{'op':40s} {'best ms':>8s} {'CPU ms':>8s} {'CPU ns/entry':>13s} {'% copy':>7s}")
    for name, (_, _, per_entry) in variants.items():
        best = min(w for w, _ in times[name])
        cpu = statistics.median(c for _, c in times[name])
        print(f"{name:40s} {1e3 * best:8.2f} {1e3 * cpu:8.2f} {1e9 * cpu / entries:13.2f} "
              f"{100 * copy_cpu / cpu:6.1f}%")
    print("(% copy: the CPU time of the plain op moving the same compulsory bytes — read K "
          "and Θ, write two arrays — over the op's; CPU time of the process, steadier than wall "
          "on a shared machine)")
    cpu = {name: statistics.median(c for _, c in times[name]) for name in times}
    plain = cpu["plain op, [K⁺; Θ⁺] stacked"]
    arithmetic = cpu["relu map alone, [K⁺; Θ⁺] stacked"] - plain
    print(f"the relu map's arithmetic, stacked: {1e9 * arithmetic / entries:.2f} ns/entry of CPU "
          f"over the plain op with its loop and traffic ({1e9 * plain / entries:.2f})")
    end_to_end(a.n, a.repeats)


def end_to_end(n, repeats):
    """The p4 network with and without the joint filter sums, alternated."""
    from identities import P4  # the p4 network (benchmarks/identities.py)
    spec = P4.format(s=16)
    name = "one filter sum for K and Θ"
    joint = kernelc.compile(spec)
    removed = passes.PASSES.pop(name)
    try:
        separate = kernelc.compile(spec + "# without the joint filter sums\n")
    finally:
        passes.PASSES[name] = removed
    assert "with_theta" in joint.source and "with_theta" not in separate.source
    x = np.random.default_rng(0).normal(size=(n, 16, 16, 3))
    nets = {"one call for K and Θ (default)": joint, "two calls (pass removed)": separate}
    firsts = {}
    for label, net in nets.items():
        start = time.perf_counter()
        net.kernel_fn(x, dtype="float32")
        firsts[label] = time.perf_counter() - start
    a, b = joint.kernel_fn(x, dtype="float64"), separate.kernel_fn(x, dtype="float64")
    diff = max(float(np.max(np.abs(a[k] - b[k])) / np.max(np.abs(b[k]))) for k in a)
    times = {label: [] for label in nets}
    for _ in range(repeats):
        for label, net in nets.items():
            wall, cpu = time.perf_counter(), time.process_time()
            net.kernel_fn(x, dtype="float32")
            times[label].append((time.perf_counter() - wall, time.process_time() - cpu))
    print(f"\np4 network, N = {n} images 16×16×3, NNGP + NTK Gram, float32, {repeats} "
          "alternated runs")
    print(f"{'':34s} {'first call s':>12s} {'best s':>8s} {'CPU median s':>13s}")
    for label in nets:
        print(f"{label:34s} {firsts[label]:12.2f} {min(w for w, _ in times[label]):8.3f} "
              f"{statistics.median(c for _, c in times[label]):13.3f}")
    one, two = (statistics.median(c for _, c in times[label]) for label in nets)
    print(f"speed-up (CPU median): {two / one:.2f}×; largest relative difference of the "
          f"float64 Gram matrices: {diff:.1e}")


if __name__ == "__main__":
    main()
