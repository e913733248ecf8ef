"""QM9 U0 atomization energies by NTK regression (t = ∞): per-atom MLP kernel vs SO(3) GCNN
kernel, MAE against training-set size (issue 6; the paper's Fig. 4 setting, scaled to a CPU).

Each molecule's energy is the sum of one shared per-atom network, so its kernel is
K(M, M') = Σ_{i∈M} Σ_{j∈M'} k(atom_i, atom_j) (kernelc.molecules), with k the NTK of
specs/so3_qm9.kc (invariant to rotations of each atom's environment) or specs/mlp_qm9.kc (an
MLP on the same spherical signals, not invariant). Training sets are nested; every model is
tested on the same held-out molecules.

Method (issue 13, item 5): the atom kernels in ``--dtype`` (float32 by default), the molecule
kernels and every solve in float64; for each training size n the relative ridge r (K + r·mean
diag K·I) is chosen by 5-fold cross-validation on those n molecules from ``--ridges``, then the
model is refitted on all n with it; the smallest eigenvalue of each molecule Gram matrix
(relative to the largest) is reported, so an indefinite kernel shows. ``--gram-dir DIR`` keeps
the atom Gram matrices on disk (``kernel_fn(out=)``: an interrupted run resumes, a finished one
is read back), so a rerun with other sizes or ridges does not recompute them. The cost of the
SO(3) kernels is printed before they are computed (``kernelc explain``'s rough estimate).

    python benchmarks/qm9_learning_curve.py [--sizes 16 32 64 128 256] [--test 80]
        [--dtype float32] [--ridges 1e-8 1e-7 ... 1e-1] [--gram-dir DIR]
        [--so3-spec specs/so3_qm9.kc] [--out docs/experiments/qm9]

Writes docs/experiments/qm9.json and docs/experiments/qm9.png.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import kernelc
from kernelc.errors import KernelcError
from kernelc.methods import GradientFlowPredictor
from kernelc.molecules import featurize_dataset, molecule_gram

ROOT = Path(__file__).resolve().parents[1]
HARTREE_EV = 27.211386
SPECS = {"MLP": "specs/mlp_qm9.kc", "SO(3) GCNN": "specs/so3_qm9.kc"}
RIDGES = [10.0 ** e for e in range(-8, 0)]
FOLDS = 5


def fit_mae(k_train, y_train, k_test, y_test, ridge):
    """Test MAE of kernel regression at t = ∞ with the relative ridge, float64."""
    pred = GradientFlowPredictor(k_train, y_train, diag_reg=ridge)
    return float(np.mean(np.abs(pred.mean(k_test).ravel() - y_test)))


def choose_ridge(k, y, ridges, folds=FOLDS, seed=0):
    """The ridge of ``ridges`` with the smallest mean validation MAE over ``folds`` folds of the
    n training molecules (K: their n × n molecule Gram matrix), and the MAE per ridge. A ridge
    for which a fold's Gram matrix is refused as indefinite counts as infinite error."""
    n = len(y)
    parts = np.array_split(np.random.default_rng(seed).permutation(n), min(folds, n))
    scores = []
    for ridge in ridges:
        errors = []
        for part in parts:
            rest = np.setdiff1d(np.arange(n), part)
            try:
                errors.append(fit_mae(k[np.ix_(rest, rest)], y[rest], k[np.ix_(part, rest)],
                                      y[part], ridge))
            except KernelcError:
                errors.append(np.inf)
        scores.append(float(np.mean(errors)))
    return ridges[int(np.argmin(scores))], scores


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "qm9_subset.npz"))
    ap.add_argument("--sizes", type=int, nargs="+", default=[16, 32, 64, 128, 256])
    ap.add_argument("--test", type=int, default=80)
    ap.add_argument("--band", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "docs" / "experiments" / "qm9"))
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"],
                    help="of the atom kernels (molecule kernels and solves are float64)")
    ap.add_argument("--ridges", type=float, nargs="+", default=RIDGES,
                    help="relative ridges tried by cross-validation")
    ap.add_argument("--gram-dir", default=None,
                    help="keep the atom Gram matrices here (resumable, reused by a rerun)")
    ap.add_argument("--so3-spec", default=SPECS["SO(3) GCNN"],
                    help="the SO(3) network (e.g. a copy with grid= for a quick run)")
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
    specs = dict(SPECS, **{"SO(3) GCNN": args.so3_spec})
    results.update(dtype=args.dtype, ridges=args.ridges, folds=FOLDS)
    for name, spec in specs.items():
        ck = kernelc.compile(ROOT / spec)
        atoms = len(train.signals) + len(test.signals)
        print(f"{name}: {spec}\n  " + ck.explain(n=atoms).split("time, rough: ")[-1]
              .split(", the throughput")[0] + f" (rough) for the {atoms}-atom Gram matrices")
        t0 = time.perf_counter()
        where = (lambda part: None) if args.gram_dir is None else \
            (lambda part: str(Path(args.gram_dir) / f"{Path(spec).stem}-{args.dtype}-{part}"))
        k_tt = ck.kernel_fn(train.signals, get="ntk", progress=True, dtype=args.dtype,
                            out=where("train"))
        k_st = ck.kernel_fn(test.signals, train.signals, get="ntk", progress=True,
                            dtype=args.dtype, out=where("test"))
        seconds = time.perf_counter() - t0
        atom_pairs = len(train.signals) * (len(train.signals) - 1) / 2 \
            + len(test.signals) * len(train.signals)
        mol_tt = molecule_gram(np.asarray(k_tt, np.float64), train.offsets)
        mol_st = molecule_gram(np.asarray(k_st, np.float64), test.offsets, train.offsets)
        maes, chosen, lowest, scores = [], [], [], []
        for n in args.sizes:
            k_n = mol_tt[:n, :n]
            evals = np.linalg.eigvalsh(k_n)
            lowest.append(float(evals[0] / evals[-1]))  # < 0: the molecule Gram is indefinite
            ridge, per_ridge = choose_ridge(k_n, y_train[:n], args.ridges)
            chosen.append(ridge)
            scores.append(per_ridge)
            maes.append(fit_mae(k_n, y_train[:n], mol_st[:, :n], y_test, ridge))
        results["models"][name] = {"spec": spec, "mae_ev": maes, "ridge": chosen,
                                   "validation_mae_per_ridge": scores,
                                   "lowest_eigenvalue_over_largest": lowest,
                                   "kernel_seconds": seconds,
                                   "us_per_atom_pair": seconds / atom_pairs * 1e6}
        print(f"{name:>11}: MAE (eV) " + "  ".join(
            f"n={n}: {m:.3f} (ridge {r:.0e}, λmin/λmax {e:.1e})"
            for n, m, r, e in zip(args.sizes, maes, chosen, lowest))
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
        ax.set_title(f"QM9, NTK regression (t = ∞, ridge by {FOLDS}-fold CV), "
                     f"{args.test} test molecules", fontsize=9)
        ax.legend()
        fig.tight_layout()
        fig.savefig(out.with_suffix(".png"), dpi=120)
    except ImportError:  # matplotlib is optional
        pass
    print(f"wrote {out.with_suffix('.json')}")


if __name__ == "__main__":
    main()
