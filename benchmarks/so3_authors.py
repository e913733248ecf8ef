"""kernelc's SO(3) kernels side by side with the authors' public code (issue 13, item 6).

The authors' code is the public code of "Equivariant Neural Tangent Kernels" (Misof, Kessel,
Gerken, ICML 2025): https://github.com/PhilippMisofCH/equivariant-ntk, the package
``equivariant_ntk`` (layers ``S2ConvSO3``, ``SO3ConvSO3``, ``SO3Pool``) on ``neural_tangents``
and ``s2fft``. It pins jax < 0.5.3 and numpy < 2, so it installs in an environment of its own
(``pip install "jax<0.5.3" "numpy<2" neural-tangents s2fft`` and ``pip install --no-deps -e .``
in a clone), not in kernelc's: pass that environment's python as ``--authors-python``; the
authors' half runs there (this file needs only numpy on that side), kernelc's half here. When
their code does not import with that python the authors' half is skipped with a message saying
why (exit status 0) and only kernelc's half runs.

For each case ``L:L'`` the network is: input of band L on the sphere, lift to SO(3) of band L'
(a full-sphere filter), relu, gconv L' -> L' (full-group filter), relu, pool over SO(3),
dense(1); both codes on their own SO(3) grid of bandwidth L' (the authors' (2L'-1, 2L', 2L'-1),
kernelc's (2L')³), float64 (the authors' code turns x64 on), NNGP and NTK. Inputs: random
polynomials of degree ≤ min(L-1, 3) in (x, y, z) per channel, so both grids sample the same
band-limited signals. Each side runs in a fresh process (its peak resident memory is the
process's ``ru_maxrss`` less its value before the first kernel call: the imports, the
compiled network and the inputs are not counted) and the time is the second call's (the first
compiles):

    python benchmarks/so3_authors.py [--authors-python PATH] [--cases 6:3,6:6,8:8]
                                     [--n-ours 32] [--n-authors 2]

It prints, per case, the time per Gram entry (n² entries of an n × n Gram matrix) of each side,
their ratio and peak memories, and checks two facts about the authors' layers:

* their S²->SO(3) lift (``S2ConvSO3``) is correct: its NTK equals its NNGP (Θ = K: the input
  NTK is zero). The 2K - b² of DESIGN.md is only in their C4 lift (``Z2ConvP4``);
* their ``SO3ConvSO3`` applies W_std² and b_std² to the diagonal covariances (cov1, cov2) but
  not to the cross-covariance (nngp): with W_std = 2 instead of 1 the NNGP of lift -> gconv ->
  pool is unchanged (ratio 1) where it should be 4 (kernelc: 4).
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np

from networks import import_failure

AUTHORS_PACKAGES = ("equivariant_ntk", "neural_tangents", "s2fft")
CHANNELS = 10
#: the earlier session's side-by-side run (docs/so3.md): kernelc's time per Gram entry over the
#: authors' code's, and the memory ratio
RECORDED = {"6:3": 180, "6:6": 7100, "8:8": 12600}
RECORDED_MEMORY = 6


def authors_missing(python):
    """Why the authors' code does not import with the interpreter ``python`` (the last line of
    its error), or None when it does."""
    return import_failure(python, "import " + ", ".join(AUTHORS_PACKAGES)
                          + "; import equivariant_ntk.layers")


def polynomial_signals(n, theta, phi, degree, seed=0):
    """(n, len(theta), len(phi), CHANNELS): random polynomials of degree ≤ ``degree`` in the
    coordinates (x, y, z) of the points (θ, φ): band-limited (band degree + 1) on any grid."""
    t, p = np.meshgrid(theta, phi, indexing="ij")
    xyz = np.stack([np.sin(t) * np.cos(p), np.sin(t) * np.sin(p), np.cos(t)])
    terms, last = [np.ones_like(t)], [np.ones_like(t)]
    for _ in range(degree):  # the monomials of each degree up to ``degree``
        last = [m * c for m in last for c in xyz]
        terms += last
    basis = np.stack(terms)  # (terms, θ, φ)
    rng = np.random.default_rng(seed)
    coef = rng.normal(size=(n, CHANNELS, basis.shape[0])) / np.sqrt(basis.shape[0])
    return np.einsum("nct,tij->nijc", coef, basis)


def _case(text):
    band, out = (int(v) for v in text.split(":"))
    return band, out


# -- kernelc --------------------------------------------------------------------------------
def ours_spec(band, out, w_gconv=1.4, relu=True):
    act = "relu\n" if relu else ""
    return (f"network side_by_side\ngroup SO3\ninput sphere bandlimit {band} channels {CHANNELS}\n"
            f"lift(bandlimit={out}, grid={out}, W_std=1.4, b_std=0.1)\n{act}"
            f"gconv(bandlimit={out}, grid={out}, W_std={w_gconv}, b_std=0.0)\n{act}"
            "group_pool\ndense(1, W_std=1.0, b_std=0.0)\n")


def run_ours(band, out, n):
    """(seconds of the second call, entries): kernelc's n × n Gram matrices, float64."""
    import kernelc
    from kernelc.runtime.harmonic import grid_angles
    model = kernelc.compile(ours_spec(band, out))
    x = polynomial_signals(n, *grid_angles(band), min(band - 1, 3))
    base = _peak()
    model.kernel_fn(x, dtype="float64", progress=False)  # compiles
    start = time.perf_counter()
    model.kernel_fn(x, dtype="float64", progress=False)
    return time.perf_counter() - start, n * n, base


def ours_gconv_ratio(band=4, out=3):
    """kernelc's NNGP of lift -> gconv -> pool -> dense with the gconv's W_std = 2 over 1."""
    import kernelc
    from kernelc.runtime.harmonic import grid_angles
    x = polynomial_signals(3, *grid_angles(band), min(band - 1, 3), seed=1)
    k = [kernelc.compile(ours_spec(band, out, w, relu=False)).kernel_fn(
        x, get="nngp", dtype="float64", progress=False) for w in (1.0, 2.0)]
    return float(np.median(k[1] / k[0]))


# -- the authors' code (imported only here) -------------------------------------------------
def _authors_layers(band, out):
    from math import pi
    from neural_tangents import stax
    from equivariant_ntk.layers import S2ConvSO3, SO3ConvSO3, SO3Pool
    from equivariant_ntk.utils.so3 import Precompute_Sph, Precompute_Wig
    import s2fft
    sph, wig = Precompute_Sph(sampling="dh"), Precompute_Wig(sampling="dh")
    sph.compute_kernels(sorted({band, out}))
    wig.compute_kernels(sorted({band, out}))
    theta = s2fft.sampling.s2_samples.thetas(band, sampling="dh")
    phi = s2fft.sampling.s2_samples.phis_equiang(band, sampling="dh")

    def lift(w=1.4, b=0.1):
        return S2ConvSO3(CHANNELS, pi, (band, out), sph, wig, kappa_std=w, b_std=b)

    def gconv(w=1.4, b=None):
        return SO3ConvSO3(CHANNELS, pi, (out, out), wig, kappa_std=w, b_std=b)
    return stax, lift, gconv, SO3Pool, theta, phi


def run_authors(band, out, n):
    """(seconds of the second call, entries): the authors' n × n Gram matrices (float64)."""
    stax, lift, gconv, pool, theta, phi = _authors_layers(band, out)
    _, _, kernel_fn = stax.serial(lift(), stax.Relu(), gconv(), stax.Relu(), pool(),
                                  stax.Dense(1))
    x = polynomial_signals(n, theta, phi, min(band - 1, 3))
    base = _peak()
    k = kernel_fn(x, None, ("nngp", "ntk"))
    np.asarray(k[1])  # compiles
    start = time.perf_counter()
    k = kernel_fn(x, None, ("nngp", "ntk"))
    np.asarray(k[1])
    return time.perf_counter() - start, n * n, base


def authors_facts(band=4, out=3):
    """(max |Θ - K| / max |K| after their lift, their NNGP ratio W_std = 2 over 1 of the gconv)."""
    stax, lift, gconv, pool, theta, phi = _authors_layers(band, out)
    x = polynomial_signals(3, theta, phi, min(band - 1, 3), seed=1)
    nngp, ntk = stax.serial(lift(b=0.3))[2](x, None, ("nngp", "ntk"))
    lift_error = float(np.max(np.abs(np.asarray(ntk) - np.asarray(nngp)))
                       / np.max(np.abs(np.asarray(nngp))))
    k = [np.asarray(stax.serial(lift(w=1.0, b=None), gconv(w=w), pool())[2](x, None, "nngp"))
         for w in (1.0, 2.0)]
    return lift_error, float(np.median(k[1] / k[0]))


# -- one side in a fresh process ------------------------------------------------------------
def _peak():
    """Peak resident memory of this process so far, bytes (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def side(which, case, n):
    if which == "facts":
        lift_error, ratio = authors_facts()
        print(json.dumps({"lift_error": lift_error, "ratio": ratio}))
        return
    band, out = _case(case)
    seconds, entries, base = (run_ours if which == "ours" else run_authors)(band, out, n)
    print(json.dumps({"seconds": seconds, "entries": entries, "peak": _peak() - base}))


def measure(python, which, case="", n=0):
    """The JSON line a fresh ``python`` running this script's ``--side which`` prints."""
    proc = subprocess.run([python, __file__, "--side", which, "--case", case, "--n", str(n)],
                          capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"the {which} side {case} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default="6:3,6:6,8:8", help="L:L' pairs, comma-separated")
    ap.add_argument("--n-ours", type=int, default=32, help="inputs of kernelc's Gram matrix")
    ap.add_argument("--n-authors", type=int, default=2, help="inputs of the authors' Gram matrix")
    ap.add_argument("--authors-python", default=sys.executable,
                    help="the python of an environment where the authors' code imports "
                         "(default: this one)")
    ap.add_argument("--side", choices=("ours", "authors", "facts"), help=argparse.SUPPRESS)
    ap.add_argument("--case", help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.side:
        return side(args.side, args.case, args.n)
    python = args.authors_python
    missing = authors_missing(python)
    if missing:
        print(f"SKIPPED the authors' half: their code does not import with {python} "
              f"({missing}). It is https://github.com/PhilippMisofCH/equivariant-ntk "
              f"({', '.join(AUTHORS_PACKAGES)}) and pins jax < 0.5.3 and numpy < 2: install it "
              "in an environment of its own and pass that python as --authors-python. The "
              "figures in docs/so3.md: an earlier session's run (issue 13): "
              + ", ".join(f"{c.replace(':', '->')}: {r:,}x" for c, r in RECORDED.items())
              + f" faster per Gram entry, {RECORDED_MEMORY}x less memory; and this script's "
              "run with the authors' environment. kernelc's half only:")
    print("peak: resident memory the Gram matrix call added (compilation included)")
    print(f"{'case':>6} {'kernelc µs/entry':>17} {'peak':>9}" +
          ("" if missing else f" {'authors µs/entry':>17} {'peak':>9} {'time ratio':>11} "
                              f"{'memory ratio':>13}"))
    for case in args.cases.split(","):
        ours = measure(sys.executable, "ours", case, args.n_ours)
        row = (f"{case.replace(':', '->'):>6} {ours['seconds'] / ours['entries'] * 1e6:>17.1f} "
               f"{ours['peak'] / 2**20:>7.0f}MB")
        if not missing:
            theirs = measure(python, "authors", case, args.n_authors)
            ratio = (theirs["seconds"] / theirs["entries"]) / (ours["seconds"] / ours["entries"])
            row += (f" {theirs['seconds'] / theirs['entries'] * 1e6:>17.1f} "
                    f"{theirs['peak'] / 2**20:>7.0f}MB {ratio:>10,.0f}x "
                    f"{theirs['peak'] / ours['peak']:>12.1f}x")
        print(row, flush=True)
    print(f"kernelc: NNGP of lift -> gconv -> pool with the gconv's W_std = 2 over W_std = 1: "
          f"{ours_gconv_ratio():.4f} (σ_w² ratio 4)")
    if not missing:
        facts = measure(python, "facts")
        lift_error, ratio = facts["lift_error"], facts["ratio"]
        print(f"authors: S2ConvSO3 lift, max |NTK - NNGP| / max |NNGP| = {lift_error:.1e} "
              "(correct: Θ = K after the lift; the 2K - b² bug is in their C4 lift only)")
        print(f"authors: NNGP of lift -> SO3ConvSO3 -> pool with kappa_std = 2 over 1: "
              f"{ratio:.4f} (should be 4: W_std² is not applied to the cross-covariance)")


if __name__ == "__main__":
    main()
