"""Finite-width ensembles: CNNs trained with full rotation augmentation vs p4 GCNNs.

    python benchmarks/ensemble_da.py                # ≈ 5–8 min on 2 busy CPU cores

The paper's theorem (Misof, Kessel, Gerken 2025, after Gerken & Kessel 2024): the mean output of
an ensemble of infinitely wide CNNs trained with *full* data augmentation over C4 equals that of
an ensemble of the matching p4 GCNNs trained without augmentation — at every training time and
also on inputs off the data manifold. At finite width and finite ensemble size the two ensemble
means differ by (i) the spread of the initialisations, shrinking like 1/sqrt(ensemble size), and
(ii) finite-width corrections, shrinking with the width. This script shows both on a small scale.

Setup (all sizes are options; the defaults are sized for 2 CPU cores):
* Data: the first ``--n-train`` digits of the shared MNIST file, reduced to 7×7 as in
  ``mnist_learning_curves.py`` (centre crop 21×21, 3×3 average pooling); targets are centred
  one-hot vectors. Evaluation inputs: ``--n-eval`` test digits and ``--n-eval`` Gaussian noise
  images (off the data manifold, with the pixel mean/std of the training digits).
* Networks: ``specs/mnist_cnn.kc`` and ``specs/mnist_p4.kc`` (the CNN is the GCNN's matching
  CNN), built at finite width with ``kernelc.network.build`` (NTK parameterisation; a GCNN's
  width is the channel count per group element).
* Training: ``--steps`` steps of full-batch gradient descent on L = 1/(2N) Σ_i ‖f(x_i) − y_i‖²
  with learning rate η = ``--lr-scale`` · n / λ_max(Θ_GCNN). "DA" CNNs train on all 4 rotations
  of every digit (N = 4n), "plain" CNNs on the digits only (a control), GCNNs on the digits.
  Ensemble members differ only in their initialisation.
* Reported: the distance between ensemble means D(A, B) = sqrt(mean_x ‖f̄_A(x) − f̄_B(x)‖²) /
  sqrt(mean_x ‖f_∞(x)‖²), relative to the size of the infinite-width GCNN prediction f_∞, for
  ensembles of the first M members, M = 1, 2, 4, ...; and the infinite-width distance itself,
  computed from kernelc's exact kernels (DA-CNN on the literal augmented training set vs GCNN,
  same discrete GD), which is zero up to round-off.

Writes docs/experiments/ensemble_da.{json,png}.
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
sys.path.insert(0, str(ROOT / "benchmarks"))

import kernelc  # noqa: E402
from kernelc.methods.data import load_mnist  # noqa: E402
from kernelc.methods.metrics import one_hot  # noqa: E402
from mnist_learning_curves import downsample  # noqa: E402


def orbit(group, x):
    """(|H|·n, ...) stack of all transformed copies, block h = ρ(h) x."""
    return np.concatenate([np.asarray(group.transform_signal(x, h, spatial_axes=(1, 2)))
                           for h in range(group.order)])


def gd_mean(theta_tr, theta_te, y, lr, steps):
    """Mean prediction of the linearised (infinitely wide) network after ``steps`` steps of GD on
    L = 1/(2N) Σ‖f − y‖², f_0 = 0:  Θ* V diag((1 − (1 − ηλ/N)^s)/λ) Vᵀ y  (exact for GD)."""
    n = theta_tr.shape[0]
    lam, v = np.linalg.eigh(theta_tr)
    keep = lam > n * np.finfo(np.float64).eps * lam[-1]
    lam, v = lam[keep], v[:, keep]
    g = (1.0 - (1.0 - lr * lam / n) ** steps) / lam
    return theta_te @ (v * g) @ (v.T @ y)


def train_ensemble(net, width, members, x, y, x_eval, lr, steps, seed, chunk):
    """Outputs (members, n_eval, 10) and final training losses of ``members`` networks trained by
    full-batch GD. ``chunk`` members are trained at once with vmap; ``chunk=1`` trains them one
    after the other (one jit): vmapped group convolutions lower to grouped convolutions, which
    XLA:CPU runs slowly from ~64 channels on (measured: p4 at width 16, 51 vs 27 ms per step and
    member), while for the plain CNN vmap is faster."""
    import jax
    import jax.numpy as jnp
    from kernelc.network import build
    init, apply = build(net.typed)
    xj, yj, xe = (jnp.asarray(a, jnp.float32) for a in (x, y, x_eval))

    def loss(p):
        r = apply(p, xj) - yj
        return 0.5 * jnp.mean(jnp.sum(r * r, axis=-1))

    def train_one(key):
        p = init(key, x.shape[1:], width=width)
        p = jax.lax.fori_loop(0, steps, lambda _, q: jax.tree_util.tree_map(
            lambda a, g: a - lr * g, q, jax.grad(loss)(q)), p)
        return apply(p, xe), loss(p)

    run = jax.jit(train_one if chunk == 1 else jax.vmap(train_one))
    keys = jax.random.split(jax.random.PRNGKey(seed), members)
    outs, losses = [], []
    for i in range(0, members, chunk):
        o, lo = run(keys[i] if chunk == 1 else keys[i:i + chunk])
        outs.append(np.asarray(o, np.float64).reshape((-1,) + o.shape[-2:]))
        losses.append(np.atleast_1d(np.asarray(lo)))
    return np.concatenate(outs), np.concatenate(losses)


def bias_estimate(fa, fb, scale):
    """Distance between the means of infinitely many members (at this width), estimated from M
    members by removing the sampling variance: ‖f̄_A − f̄_B‖² − (s²_A + s²_B)/M, averaged over
    inputs (s² = unbiased member variance summed over logits); clipped at 0."""
    m = fa.shape[0]
    d2 = np.mean(np.sum((fa.mean(0) - fb.mean(0)) ** 2, axis=-1))
    var = np.mean(np.sum(fa.var(0, ddof=1) + fb.var(0, ddof=1), axis=-1)) / m
    return float(np.sqrt(max(d2 - var, 0.0)) / scale), float(np.sqrt(var) / scale)


def dist(a, b, scale):
    return float(np.sqrt(np.mean(np.sum((a - b) ** 2, axis=-1))) / scale)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=None)
    ap.add_argument("--cnn", default="specs/mnist_cnn.kc")
    ap.add_argument("--gcnn", default="specs/mnist_p4.kc")
    ap.add_argument("--n-train", type=int, default=16)
    ap.add_argument("--n-eval", type=int, default=32, help="test digits, and as many noise images")
    ap.add_argument("--widths", default="4,8,16")
    ap.add_argument("--members", type=int, default=16)
    ap.add_argument("--chunk", type=int, default=8,
                    help="members trained at once (vmap) for CNNs and narrow GCNNs; GCNNs of width "
                         ">= 16 train one member at a time (faster on CPU)")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--lr-scale", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "docs" / "experiments" / "ensemble_da"))
    args = ap.parse_args(argv)
    t_start = time.perf_counter()

    cnn = kernelc.compile(ROOT / args.cnn)
    gcnn = kernelc.compile(ROOT / args.gcnn)
    group = gcnn.typed.group
    ds = load_mnist(args.data)
    x = downsample(ds.x_train[:args.n_train])
    y = one_hot(ds.y_train[:args.n_train], 10)
    rng = np.random.default_rng(args.seed)
    digits = downsample(ds.x_test[:args.n_eval])
    noise = float(x.mean()) + float(x.std()) * rng.normal(size=digits.shape)
    x_eval = np.concatenate([digits, noise])
    x_aug, y_aug = orbit(group, x), np.tile(y, (group.order, 1))
    n = len(x)

    # ---- infinite width, from kernelc's exact kernels (float64)
    kw = dict(dtype="float64", max_memory="1GB")
    th_g = gcnn.kernel_fn(x, None, "ntk", **kw)
    th_g_e = gcnn.kernel_fn(x_eval, x, "ntk", symmetric=False, **kw)
    lam_max = float(np.linalg.eigvalsh(th_g)[-1])
    lr = args.lr_scale * n / lam_max
    f_inf_g = gd_mean(th_g, th_g_e, y, lr, args.steps)
    th_c = cnn.kernel_fn(x_aug, None, "ntk", **kw)
    th_c_e = cnn.kernel_fn(x_eval, x_aug, "ntk", symmetric=False, **kw)
    f_inf_da = gd_mean(th_c, th_c_e, y_aug, lr, args.steps)          # literal augmented set
    th_p = cnn.kernel_fn(x, None, "ntk", **kw)
    th_p_e = cnn.kernel_fn(x_eval, x, "ntk", symmetric=False, **kw)
    f_inf_p = gd_mean(th_p, th_p_e, y, lr, args.steps)
    scale = float(np.sqrt(np.mean(np.sum(f_inf_g ** 2, axis=-1))))
    parts = {"digits": slice(0, args.n_eval), "noise": slice(args.n_eval, 2 * args.n_eval)}
    inf = {"DA-CNN vs GCNN": dist(f_inf_da, f_inf_g, scale),
           "plain CNN vs GCNN": dist(f_inf_p, f_inf_g, scale)}
    print(f"n={n} digits (augmented: {len(x_aug)}), eval {args.n_eval} digits + {args.n_eval} noise; "
          f"lr={lr:.3g} (λ_max(Θ)={lam_max:.3g}), {args.steps} GD steps (t = {lr * args.steps / n:.3g})")
    print("infinite width (kernelc): " + ", ".join(f"D({k}) = {v:.1e}" for k, v in inf.items()), flush=True)

    # ---- finite width ensembles
    sizes = [m for m in (1, 2, 4, 8, 16, 32, 64, 128) if m <= args.members]
    results = []
    for w in map(int, args.widths.split(",")):
        t0 = time.perf_counter()
        f_g, l_g = train_ensemble(gcnn, w, args.members, x, y, x_eval, lr, args.steps, 3 * args.seed + 0,
                                  1 if w >= 16 else args.chunk)
        f_da, l_da = train_ensemble(cnn, w, args.members, x_aug, y_aug, x_eval, lr, args.steps,
                                    3 * args.seed + 1 + 1000, args.chunk)
        f_p, l_p = train_ensemble(cnn, w, args.members, x, y, x_eval, lr, args.steps,
                                  3 * args.seed + 2 + 2000, args.chunk)
        secs = time.perf_counter() - t0
        row = {"width": w, "seconds": round(secs, 1),
               "final_train_loss": {"GCNN": float(np.mean(l_g)), "DA-CNN": float(np.mean(l_da)),
                                    "plain CNN": float(np.mean(l_p))},
               "members": sizes, "D": {}}
        for label, other in (("DA-CNN vs GCNN", f_da), ("plain CNN vs GCNN", f_p)):
            row["D"][label] = {}
            for part, sl in [("all", slice(None))] + list(parts.items()):
                row["D"][label][part] = [dist(other[:m].mean(0)[sl], f_g[:m].mean(0)[sl], scale)
                                         for m in sizes]
        row["infinite_ensemble_estimate"] = {}
        for label, other in (("DA-CNN vs GCNN", f_da), ("plain CNN vs GCNN", f_p)):
            est, se = bias_estimate(other, f_g, scale)
            row["infinite_ensemble_estimate"][label] = {"D": est, "sampling_part": se}
        row["D"]["GCNN vs infinite width"] = {"all": [dist(f_g[:m].mean(0), f_inf_g, scale) for m in sizes]}
        row["D"]["DA-CNN vs infinite width"] = {"all": [dist(f_da[:m].mean(0), f_inf_da, scale) for m in sizes]}
        results.append(row)
        d = row["D"]
        print(f"width {w:3d} ({secs:.0f} s): " + "  ".join(
            f"M={m}: DA {a:.3f} / plain {b:.3f}" for m, a, b in
            zip(sizes, d["DA-CNN vs GCNN"]["all"], d["plain CNN vs GCNN"]["all"])), flush=True)
        est = row["infinite_ensemble_estimate"]
        print(f"           M→∞ estimate: DA {est['DA-CNN vs GCNN']['D']:.3f}, plain "
              f"{est['plain CNN vs GCNN']['D']:.3f}; final train loss " + ", ".join(
                  f"{k} {v:.2e}" for k, v in row["final_train_loss"].items()), flush=True)

    total = time.perf_counter() - t_start
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    res = {"description": __doc__.split("\n")[0],
           "command": "python benchmarks/ensemble_da.py " + " ".join(argv or sys.argv[1:]),
           "n_train": n, "n_eval_digits": args.n_eval, "n_eval_noise": args.n_eval,
           "steps": args.steps, "lr": lr, "t_equivalent": lr * args.steps / n,
           "distance": "sqrt(mean_x |fbar_A - fbar_B|^2) / sqrt(mean_x |f_inf_GCNN|^2)",
           "infinite_width": inf, "finite_width": results, "total_seconds": round(total, 1)}
    out.with_suffix(".json").write_text(json.dumps(res, indent=1))
    _plot(res, out.with_suffix(".png"))
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.png')} ({total:.0f} s)")
    return 0


def _plot(res, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, row in enumerate(res["finite_width"]):
        m = row["members"]
        for ax, part in zip(axes, ("digits", "noise")):
            ax.plot(m, row["D"]["DA-CNN vs GCNN"][part], "-o", color=colors[i],
                    label=f"DA-CNN vs GCNN, width {row['width']}")
            ax.plot(m, row["D"]["plain CNN vs GCNN"][part], ":x", color=colors[i],
                    label=f"plain CNN vs GCNN, width {row['width']}")
    for ax, part in zip(axes, ("test digits", "noise inputs (off the data manifold)")):
        m = res["finite_width"][0]["members"]
        first = res["finite_width"][0]["D"]["DA-CNN vs GCNN"]["all"][0]
        ax.plot(m, [first / np.sqrt(k) for k in m], color="gray", lw=0.8, ls="--", label="∝ 1/√M")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(m)
        ax.set_xticklabels([str(k) for k in m])
        ax.minorticks_off()
        ax.set_xlabel("ensemble size M")
        ax.set_title(part, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("relative distance of ensemble means")
    axes[1].legend(fontsize=7)
    fig.suptitle(f"MNIST 7×7, {res['n_train']} digits, {res['steps']} GD steps: ensembles of "
                 "rotation-augmented CNNs vs p4 GCNNs", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
