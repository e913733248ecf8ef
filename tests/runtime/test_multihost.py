"""Gram matrices over several processes (jax.distributed, runtime.driver.Placement's global mesh):
two processes on this host, two forced CPU devices each, compute the same Gram matrices as one
process to rounding, every process gets them whole, the tiles run on the devices of both
processes, an on-disk run is written by process 0 and resumed, and disagreements between the
processes stop every one of them with a message instead of a hang. Each process is a subprocess
(XLA_FLAGS and jax.distributed.initialize must come before JAX starts; this process keeps its
one device)."""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import kernelc

ROOT = Path(__file__).resolve().parents[2]
#: relu: its float32 precision chain runs on the host, from per-pair arrays gathered off every
#: process's devices (erf's, in the graph, is checked over four devices in test_devices.py)
SPEC = "group p4\ninput 3 x 3 channels 2\nlift(size=3, b_std=0.1)\nrelu\ngroup_pool\ndense(1)"

SCRIPT = r"""
import json, os, sys
import jax
pid, port, folder = int(sys.argv[1]), sys.argv[2], sys.argv[3]
jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}", num_processes=2,
                           process_id=pid)
import numpy as np, kernelc
from jax.experimental import multihost_utils
from kernelc.errors import KernelcError
net = kernelc.compile(sys.argv[4])
x = np.random.default_rng(0).normal(size=(7, 3, 3, 2))
x2 = np.random.default_rng(1).normal(size=(3, 3, 3, 2))
report = {"devices": len(jax.devices()), "local": len(jax.local_devices())}
save = lambda name, grams: [np.save(os.path.join(folder, f"{pid}-{name}-{k}.npy"), np.asarray(v))
                            for k, v in grams.items()]
save("gram64", net.kernel_fn(x, dtype="float64"))
save("gram32", net.kernel_fn(x, dtype="float32"))
from kernelc.runtime.maps import PRECISION_ESTIMATES
report["precision"] = [list(key) + list(v) for key, v in sorted(PRECISION_ESTIMATES.items())]
save("cross64", net.kernel_fn(x, x2, dtype="float64"))
cross = net.kernel_fn.compiled_passes[True, True, None].compiled.values()
report["cross_processes"] = sorted({tuple(sorted({d.process_index for d in sh.device_set}))
                                    for c in cross
                                    for sh in jax.tree_util.tree_leaves(c.output_shardings)})
report["cross_devices"] = sorted({len(sh.device_set) for c in cross
                                  for sh in jax.tree_util.tree_leaves(c.output_shardings)})
store = os.path.join(folder, "store")
save("store-fresh", net.kernel_fn(x, dtype="float64", out=store))
save("store-again", net.kernel_fn(x, dtype="float64", out=store))  # every tile marked done
multihost_utils.sync_global_devices("store read")  # process 1 has read the files
if pid == 0:  # an interrupted run: the tile unmarked and its entries lost
    done = np.load(os.path.join(store, "tiles_done.npy"), mmap_mode="r+")
    gram = np.load(os.path.join(store, "nngp.npy"), mmap_mode="r+")
    report["tiles"] = len(done)
    done[:], gram[:] = False, 0.0
    done.flush(), gram.flush()
multihost_utils.sync_global_devices("store damaged")
save("store-resumed", net.kernel_fn(x, dtype="float64", out=store))
# many tiles (N = 92: 4186 pairs, tiles of as many pairs as the self pass's inputs), the
# second one lost: the others follow process 0's marks, skip the rest with it and recompute it
from kernelc.runtime.driver import PairIndices
xl = np.random.default_rng(2).normal(size=(92, 3, 3, 2))
large = os.path.join(folder, "large")
net.kernel_fn(xl, dtype="float64", get="nngp", out=large)
multihost_utils.sync_global_devices("large written")
if pid == 0:
    done = np.load(os.path.join(large, "tiles_done.npy"), mmap_mode="r+")
    gram = np.load(os.path.join(large, "nngp.npy"), mmap_mode="r+")
    report["large_tiles"] = len(done)
    size = -(-4186 // len(done))  # the tile size (4186 pairs are not a multiple of it)
    report["large_tile_pairs"] = size
    I, J = PairIndices(92, 92, True, True)[size:2 * size]
    done[1], gram[I, J], gram[J, I] = False, 0.0, 0.0
    done.flush(), gram.flush()
multihost_utils.sync_global_devices("large damaged")
from kernelc.runtime import driver  # count the tiles each process runs: the diagonal's, and
fetch, runs = driver.Placement.fetch, []  # the cross pass's second tile only
driver.Placement.fetch = lambda self, arrays: runs.append(1) or fetch(self, arrays)
np.save(os.path.join(folder, f"{pid}-large.npy"),
        net.kernel_fn(xl, dtype="float64", get="nngp", out=large))
driver.Placement.fetch = fetch
report["large_resumed_tiles"] = len(runs)
errors = {}
for case, call in [
        ("other inputs", lambda: net.kernel_fn(x + pid, dtype="float64")),
        ("other computation", lambda: net.kernel_fn(x, dtype="float32", out=store)),
        ("one bad process", lambda: net.kernel_fn(x if pid else x[:, :2], dtype="float64")),
        ("devices of one other process", lambda: net.kernel_fn(x, devices=[jax.devices()[-1]]))]:
    try:
        call()
        errors[case] = None
    except KernelcError as exc:
        errors[case] = [type(exc).__name__, str(exc)]
report["errors"] = errors
with open(os.path.join(folder, f"{pid}-report.json"), "w") as f:  # gloo prints on stdout
    json.dump(report, f)
"""


def run_two(commands, env):
    """Run the two processes' commands at once; both must succeed. Their (stdout, stderr)."""
    procs = [subprocess.Popen(c, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for c in commands]
    try:
        outs = [p.communicate(timeout=300) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    return outs


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(sys.platform == "win32", reason="XLA_FLAGS host devices: Linux/macOS")
def test_two_processes_give_the_one_process_numbers(tmp_path):
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2",
               JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT))
    port = str(free_port())
    run_two([[sys.executable, "-c", SCRIPT, str(pid), port, str(tmp_path), SPEC]
             for pid in (0, 1)], env)
    reports = [json.loads((tmp_path / f"{pid}-report.json").read_text()) for pid in (0, 1)]
    for r in reports:
        assert r["devices"] == 4 and r["local"] == 2
        # one tile split over the four devices, two on each process
        assert r["cross_devices"] == [4] and r["cross_processes"] == [[0, 1]]

    net = kernelc.compile(SPEC)
    x = np.random.default_rng(0).normal(size=(7, 3, 3, 2))
    x2 = np.random.default_rng(1).normal(size=(3, 3, 3, 2))
    reference = {"gram64": net.kernel_fn(x, dtype="float64"),
                 "gram32": net.kernel_fn(x, dtype="float32"),
                 "cross64": net.kernel_fn(x, x2, dtype="float64")}
    for run in ("store-fresh", "store-again", "store-resumed"):
        reference[run] = reference["gram64"]
    for name, grams in reference.items():
        for kernel, want in grams.items():
            for pid in (0, 1):  # every process gets the whole matrices
                got = np.load(tmp_path / f"{pid}-{name}-{kernel}.npy")
                # equal to rounding: the devices' slices of a tile are vectorised differently
                tol = 1e-6 if name == "gram32" else 1e-13
                assert np.max(np.abs(got - want)) <= tol * np.max(np.abs(want)), (name, kernel)
    # the float32 rounding estimates of every device's slices, merged: each process warns alike,
    # as one process would
    from kernelc.runtime.maps import PRECISION_ESTIMATES
    net.kernel_fn(x, dtype="float32")
    one = [list(key) + list(v) for key, v in sorted(PRECISION_ESTIMATES.items())]
    assert reports[0]["precision"] == reports[1]["precision"] and len(one) == 1
    assert [r[:2] for r in reports[0]["precision"]] == [r[:2] for r in one]
    np.testing.assert_allclose([r[2:] for r in reports[0]["precision"]], [r[2:] for r in one],
                               rtol=1e-3)
    xl = np.random.default_rng(2).normal(size=(92, 3, 3, 2))
    want = net.kernel_fn(xl, dtype="float64", get="nngp")
    size = reports[0]["large_tile_pairs"]  # a multiple of the 2 processes' devices
    assert reports[0]["large_tiles"] == -(-4186 // size) > 2 and size >= 92
    # the self pairs' one tile and the lost Gram tile: the done tiles skipped by both
    assert [r["large_resumed_tiles"] for r in reports] == [2, 2]
    for pid in (0, 1):
        got = np.load(tmp_path / f"{pid}-large.npy")
        assert np.max(np.abs(got - want)) <= 1e-13 * np.max(np.abs(want))
    assert reports[0]["tiles"] == 1  # the damaged tile was recomputed, not left at zero

    errors = [r["errors"] for r in reports]
    for pid in (0, 1):
        kind, message = errors[pid]["other inputs"]
        assert kind == "InputError" and "process 1 called kernel_fn with other arguments than " \
            "process 0" in message
    kind, message = errors[0]["other computation"]
    assert kind == "OutputError" and "holds the Gram matrices of another computation" in message
    kind, message = errors[1]["other computation"]
    assert kind == "OutputError" and "process 0 of 2 stopped with a OutputError" in message
    kind, message = errors[0]["one bad process"]
    assert kind == "InputError" and "x1 must have shape (N, 3, 3, 2)" in message
    kind, message = errors[1]["one bad process"]
    assert kind == "InputError" and "process 0 of 2 stopped with a InputError" in message
    kind, message = errors[0]["devices of one other process"]
    assert kind == "InputError" and "devices belong to the processes [1], but this is " \
        "process 0 of 2" in message
    assert errors[1]["devices of one other process"] is None  # its own device: it runs alone


def _cli_env(**extra):
    # no cluster variables: JAX's auto-detection must find nothing here (a test run under SLURM)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLURM_", "OMPI_", "PMI_", "JAX_COORDINATOR"))}
    return dict(env, JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT), **extra)


@pytest.mark.slow  # two more JAX processes (~11 s); the fast suite keeps the kernel_fn test above
@pytest.mark.skipif(sys.platform == "win32", reason="XLA_FLAGS host devices: Linux/macOS")
def test_the_command_line_runs_over_two_processes(tmp_path):
    spec = tmp_path / "net.kc"
    spec.write_text(SPEC)
    env = _cli_env(XLA_FLAGS="--xla_force_host_platform_device_count=2")
    port = str(free_port())
    outs = run_two([[sys.executable, "-m", "kernelc.cli", "kernel", str(spec), "--random", "5",
                     "--dtype", "float64", "--out-dir", str(tmp_path / "grams"), "--distributed",
                     "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2",
                     "--process-id", str(pid)] for pid in (0, 1)], env)
    assert "wrote " in outs[0][0] and "wrote " not in outs[1][0]  # process 0 reports
    net = kernelc.compile(SPEC)
    x = np.random.default_rng(0).normal(size=(5, 3, 3, 2))  # --random 5, --seed 0
    for name, want in net.kernel_fn(x, dtype="float64").items():
        got = np.load(tmp_path / "grams" / f"{name}.npy")
        assert np.max(np.abs(got - want)) <= 1e-13 * np.max(np.abs(want)), name


def test_the_command_line_says_how_to_launch_several_processes(tmp_path, capsys):
    from kernelc.cli import main
    spec = tmp_path / "net.kc"
    spec.write_text(SPEC)
    # refused before JAX's runtime is touched: in this process
    assert main(["kernel", str(spec), "--random", "3", "--process-id", "1"]) != 0
    assert "--coordinator, --num-processes and --process-id go with --distributed" \
        in capsys.readouterr().err
    base = [sys.executable, "-m", "kernelc.cli", "kernel", str(spec), "--random", "3"]
    done = subprocess.run(base + ["--distributed"], env=_cli_env(), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "--distributed: JAX could not start its multi-process runtime (coordinator_address " \
        "should be defined.); launch one process per host under srun (SLURM)" in done.stderr
