"""NTK learning curves on MNIST: plain CNN vs p4 vs p4m, upright and rotated test digits.

    python benchmarks/mnist_learning_curves.py            # ≈ 8–10 min on 2 busy CPU cores

Data: the shared 10k MNIST file (../shared/data/mnist_test10k.npz; its own 8000/2000 split).
To fit a 2-core CPU budget the 28×28 digits are reduced to 7×7: a centre crop of 21×21
(rows/columns 3..23; MNIST digits sit in the central 20×20 box) followed by 3×3 average pooling.
Training sets are nested prefixes of x_train; the test set is the first N of x_test, once
upright and once rotated by a random multiple of 90° per image (rotation about the box centre).

Networks (specs/mnist_*.kc): two 3×3 ReLU layers + invariant pooling + dense(10); the CNN is
the matching CNN of the GCNNs. For each network the kernels (NTK and NNGP, float32) are computed
once for the largest training set, then kernel regression (NTK, t = ∞, and the NNGP posterior mean;
float64 solves, ridge 1e-4 × mean diagonal) is evaluated per size. The p4/p4m kernels are invariant under 90° rotations, so
their rotated-test kernel equals the upright one; the script computes it on a subset of the
rotated images to confirm (max relative difference reported) and reuses the upright rows.

Writes docs/experiments/mnist_learning_curves.{json,png}.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import kernelc  # noqa: E402
from kernelc.groups import get_group  # noqa: E402
from kernelc.methods.tasks import (compute_grams, learning_curve, plot_curves,  # noqa: E402
                                      print_table)
from kernelc.methods.data import ImagePreprocessing, load_mnist  # noqa: E402


def downsample(x: np.ndarray) -> np.ndarray:
    """(N, 28, 28, 1) in [0, 1] -> (N, 7, 7, 1): centre crop 21×21, then 3×3 average pooling
    (the CLI's ``--crop 21 --pool 3``)."""
    return ImagePreprocessing.parse(21, 3).apply(x, spatial_axes=2)


def rotate_random(x: np.ndarray, seed: int):
    """Each image rotated by k·90°, k uniform in {0,1,2,3} (about the box centre)."""
    p4 = get_group("p4")
    ks = np.random.default_rng(seed).integers(0, 4, size=len(x))
    # element indices of the rotations by k·90° in p4's element list
    rot = np.array([[0, -1], [1, 0]])
    idx = [p4.index_of(np.linalg.matrix_power(rot, k)) for k in range(4)]
    out = np.stack([np.asarray(p4.transform_signal(xi, idx[k])) for xi, k in zip(x, ks)])
    return out, ks


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=None, help="MNIST npz (default: ../shared/data/mnist_test10k.npz)")
    ap.add_argument("--specs", default="specs/mnist_cnn.kc,specs/mnist_p4.kc,specs/mnist_p4m.kc")
    ap.add_argument("--sizes", default="32,64,128,256")
    ap.add_argument("--n-test", type=int, default=200)
    ap.add_argument("--n-check", type=int, default=10,
                    help="rotated test images on which the invariance of GCNN kernels is checked")
    ap.add_argument("--reg", type=float, default=1e-4)
    ap.add_argument("--t", default="inf")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "docs" / "experiments" / "mnist_learning_curves"))
    ap.add_argument("--save-grams", default=None, metavar="DIR",
                    help="also write each network's Gram matrices to DIR/<spec name>.npz")
    ap.add_argument("--save-data", default=None,
                    help="also write the 7×7 data as .npz (x_train, y_train, x_test, y_test, x_test_rot)")
    args = ap.parse_args(argv)

    sizes = sorted(int(s) for s in args.sizes.split(","))
    times = [float(t) for t in args.t.split(",")]
    ds = load_mnist(args.data)
    n_max = sizes[-1]
    x_tr, y_tr = downsample(ds.x_train[:n_max]), ds.y_train[:n_max]
    x_te, y_te = downsample(ds.x_test[:args.n_test]), ds.y_test[:args.n_test]
    x_rot, ks = rotate_random(x_te, args.seed)
    print(f"MNIST 7×7: {n_max} training, {len(x_te)} test images (rotations k·90°, counts "
          f"{np.bincount(ks, minlength=4).tolist()}); sizes {sizes}", flush=True)
    if args.save_data:
        np.savez(args.save_data, x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te,
                 x_test_rot=x_rot, y_test_rot=y_te)

    records, info = [], {}
    t_all = time.perf_counter()
    for path in args.specs.split(","):
        net = kernelc.compile(ROOT / path if not Path(path).is_absolute() else path)
        name, group = net.typed.spec.name, net.typed.group
        invariant = group.order > 1
        tests = {"upright": x_te}
        if not invariant:
            tests["rotated"] = x_rot
        else:
            tests["rotated_check"] = x_rot[:args.n_check]
        print(f"[{name}] {net.typed.summary()}", flush=True)
        grams, secs = compute_grams(net, x_tr, tests, dtype="float32", max_memory="1GB")
        entry = {"summary": net.typed.summary(), "kernel_seconds": round(secs, 1)}
        if invariant:
            chk = grams.pop("rotated_check")
            ref = grams["upright"]
            rel = max(float(np.max(np.abs(chk[k] - ref[k][:args.n_check])) / np.max(np.abs(ref[k])))
                      for k in ("nngp", "ntk"))
            entry["rotation_invariance_max_rel_diff"] = rel
            print(f"[{name}] rotated vs upright test kernels on {args.n_check} images: max rel. "
                  f"diff {rel:.1e} (float32); reusing the upright rows for the rotated test set",
                  flush=True)
            grams["rotated"] = ref
        print(f"[{name}] kernels: {secs:.1f} s", flush=True)
        if args.save_grams:
            Path(args.save_grams).mkdir(parents=True, exist_ok=True)
            np.savez(Path(args.save_grams) / f"{name}.npz",
                     **{f"{part}_{k}": v for part, g in grams.items() for k, v in g.items()})
        info[name] = entry
        records += learning_curve(grams, "classification", y_tr, {"upright": y_te, "rotated": y_te},
                                  sizes, times, args.reg, spec=name, n_classes=10)
    total = time.perf_counter() - t_all
    ntk = [r for r in records if r["kernel"] == "ntk"]
    print_table(records, "classification")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    res = {"description": "NTK/NNGP kernel regression on MNIST 7×7 (centre crop 21×21, 3×3 avg "
                          "pool), nested training prefixes of x_train, first n_test of x_test, "
                          "upright and rotated by random multiples of 90°",
           "command": "python benchmarks/mnist_learning_curves.py " + " ".join(argv or sys.argv[1:]),
           "sizes": sizes, "n_test": len(x_te), "reg": args.reg, "t": args.t, "dtype": "float32",
           "rotation_counts": np.bincount(ks, minlength=4).tolist(), "specs": info,
           "total_seconds": round(total, 1), "results": records}
    out.with_suffix(".json").write_text(json.dumps(res, indent=1))
    plot_curves(ntk, out.with_suffix(".png"), "classification",
                title=f"MNIST 7×7, NTK regression (t=∞), {len(x_te)} test digits")
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.png')} ({total:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
