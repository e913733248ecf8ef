"""The per-atom SO(3) kernel (issue 6): L = 6, 10 channels (specs/so3_atom.kc), time per pair
of atoms on the reduced path (identity R: one function on the (2B)³ SO(3) grid per pair) and,
side by side in the same run, on the general path (the (2B)³ × (2B)³ kernel per pair that the
paper's public code keeps). Inputs are real QM9 atoms (kernelc.molecules) when the data set is
found, band-limited random signals otherwise.

    python benchmarks/so3_kernel.py [--atoms 200] [--general-atoms 3] [--grid B]

``--grid B`` pins the grid of every lift/gconv (the figures of docs/performance.md are at
``--grid 6``, the default before issue 13); without it the spec's accuracy-driven defaults are
used (docs/so3.md), on which the general path ((2B)⁶ entries per pair) is out of reach.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import kernelc

ROOT = Path(__file__).resolve().parents[1]


def qm9_atoms(n, band):
    data = ROOT.parent / "shared" / "data" / "qm9_subset.npz"
    if data.exists():
        from kernelc.molecules import featurize_dataset
        atoms = featurize_dataset(data, np.arange(2 * n // 9 + 2), band)
        return atoms.signals[:n].astype(np.float32), "QM9 atoms"
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 2 * band, 2 * band, 10)).astype(np.float32), "random signals"


def _time(fn, *args, repeat=3, **kw):
    fn(*args, **kw)  # compile
    best = np.inf
    for _ in range(repeat):
        t = time.perf_counter()
        fn(*args, **kw)
        best = min(best, time.perf_counter() - t)
    return best


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", default=str(ROOT / "specs" / "so3_atom.kc"))
    ap.add_argument("--atoms", type=int, default=200)
    ap.add_argument("--general-atoms", type=int, default=3)
    ap.add_argument("--grid", type=int, default=None,
                    help="grid bandwidth B of every lift/gconv (default: the spec's defaults)")
    args = ap.parse_args(argv)
    spec = args.spec
    if args.grid is not None:
        from kernelc.frontend.parser import parse_spec
        grid = f"grid={args.grid}, "
        spec = parse_spec(Path(spec).read_text().replace("lift(", "lift(" + grid)
                          .replace("gconv(", "gconv(" + grid))
    reduced = kernelc.compile(spec)
    general = kernelc.compile(spec, identities={"R": False})
    band = reduced.typed.input_type.band
    x, what = qm9_atoms(args.atoms, band)
    print(f"{Path(args.spec).name}: band {band}, {x.shape[-1]} channels, grid "
          f"{reduced.typed.node('n001').out.shape}, {what}")

    n = args.atoms
    pairs = n * (n - 1) // 2
    t_red = _time(reduced.kernel_fn, x, get=("nngp", "ntk"))
    m = args.general_atoms
    xa, xb = x[:m], x[m:2 * m]
    t_red_small = _time(reduced.kernel_fn, xa, xb, get=("nngp", "ntk"))
    t_gen_small = _time(general.kernel_fn, xa, xb, get=("nngp", "ntk"), repeat=1)
    k_red = reduced.kernel_fn(xa, xb, dtype="float64")
    k_gen = general.kernel_fn(xa, xb, dtype="float64")
    diff = max(float(np.max(np.abs(k_red[k] - k_gen[k]) / np.max(np.abs(k_gen[k]))))
               for k in k_red)
    print(f"reduced (R), Gram matrix of {n} atoms ({pairs} pairs + {n} diagonal): {t_red:.2f} s "
          f"= {t_red / pairs * 1e6:.1f} µs per pair (NNGP and NTK, float32)")
    print(f"reduced (R), {m}×{m} cross block: {t_red_small / (m * m) * 1e3:.2f} ms per pair")
    print(f"general path, {m}×{m} cross block: {t_gen_small / (m * m) * 1e3:.1f} ms per pair")
    print(f"speed-up of (R) on the same block: {t_gen_small / t_red_small:.0f}×; "
          f"per pair vs the large Gram matrix: {t_gen_small / (m * m) / (t_red / pairs):.0f}×")
    print(f"stored per pair: reduced {reduced.derivation.nodes[1].layout.entries} entries, "
          f"general {general.derivation.nodes[1].layout.entries}")
    print(f"largest relative difference reduced vs general (float64, aliasing of the grid "
          f"quadrature through ReLU): {diff:.2e}")


if __name__ == "__main__":
    main()
