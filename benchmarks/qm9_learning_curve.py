"""QM9 U0 atomization energies by NTK regression (t = ∞): per-atom MLP kernel vs SO(3) GCNN
kernel, MAE against training-set size (issue 6; the paper's Fig. 4 setting, scaled to a CPU).

Each molecule's energy is the sum of one shared per-atom network, so its kernel is
K(M, M') = Σ_{i∈M} Σ_{j∈M'} k(atom_i, atom_j) (kernelc.molecules), with k the NTK of
specs/so3_qm9.kc (invariant to rotations of each atom's environment) or specs/mlp_qm9.kc (an
MLP on the same spherical signals, not invariant). Training sets are nested; every model is
tested on the same held-out molecules.

    python benchmarks/qm9_learning_curve.py [--sizes 16 32 64 128 256] [--test 80]

Writes docs/experiments/qm9.json and docs/experiments/qm9.png.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import kernelc
from kernelc.methods import GradientFlowPredictor
from kernelc.molecules import featurize_dataset, molecule_gram

ROOT = Path(__file__).resolve().parents[1]
HARTREE_EV = 27.211386
SPECS = {"MLP": "specs/mlp_qm9.kc", "SO(3) GCNN": "specs/so3_qm9.kc"}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "qm9_subset.npz"))
    ap.add_argument("--sizes", type=int, nargs="+", default=[16, 32, 64, 128, 256])
    ap.add_argument("--test", type=int, default=80)
    ap.add_argument("--band", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "docs" / "experiments" / "qm9"))
    args = ap.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    order = rng.permutation(10000)
    n_train = max(args.sizes)
    train = featurize_dataset(args.data, order[:n_train], args.band)
    test = featurize_dataset(args.data, order[n_train:n_train + args.test], args.band,
                             scale=train.scale)
    print(f"{n_train} training molecules ({len(train.signals)} atoms), {args.test} test "
          f"molecules ({len(test.signals)} atoms), band {args.band}")
    y_train = train.energy * HARTREE_EV
    y_test = test.energy * HARTREE_EV
    results = {"sizes": args.sizes, "test_molecules": args.test, "band": args.band,
               "train_atoms": int(len(train.signals)), "test_atoms": int(len(test.signals)),
               "models": {}}
    for name, spec in SPECS.items():
        ck = kernelc.compile(ROOT / spec)
        t0 = time.perf_counter()
        k_tt = ck.kernel_fn(train.signals, get="ntk", progress=True)
        k_st = ck.kernel_fn(test.signals, train.signals, get="ntk", progress=True)
        seconds = time.perf_counter() - t0
        atom_pairs = len(train.signals) * (len(train.signals) - 1) / 2 \
            + len(test.signals) * len(train.signals)
        mol_tt = molecule_gram(np.asarray(k_tt, np.float64), train.offsets)
        mol_st = molecule_gram(np.asarray(k_st, np.float64), test.offsets, train.offsets)
        maes = []
        for n in args.sizes:
            # a tiny relative ridge: float32 kernels summed over ~300 atom pairs per entry
            pred = GradientFlowPredictor(mol_tt[:n, :n], y_train[:n], diag_reg=1e-6)
            mean = pred.mean(mol_st[:, :n])
            maes.append(float(np.mean(np.abs(mean.ravel() - y_test))))
        results["models"][name] = {"spec": spec, "mae_ev": maes, "kernel_seconds": seconds,
                                   "us_per_atom_pair": seconds / atom_pairs * 1e6}
        print(f"{name:>11}: MAE (eV) " + "  ".join(f"n={n}: {m:.3f}" for n, m in
                                                    zip(args.sizes, maes))
              + f"   [{seconds:.0f} s, {seconds / atom_pairs * 1e6:.1f} µs per atom pair]")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(5, 4))
        for name, r in results["models"].items():
            ax.loglog(args.sizes, r["mae_ev"], "o-", label=name)
        ax.set_xlabel("training molecules")
        ax.set_ylabel("test MAE of U0 atomization energy (eV)")
        ax.set_title(f"QM9, NTK regression (t = ∞), {args.test} test molecules")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out.with_suffix(".png"), dpi=120)
    except ImportError:  # matplotlib is optional
        pass
    print(f"wrote {out.with_suffix('.json')}")


if __name__ == "__main__":
    main()
