"""Gram matrices split over several devices (runtime.driver.Placement): the same numbers as on
one device (to rounding), and every device computes a slice of each tile. Four CPU devices are forced in a
subprocess (XLA_FLAGS must be set before JAX starts; this process keeps its one device)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import kernelc
from kernelc.errors import InputError

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import json, sys
import jax, numpy as np, kernelc
spec = "group p4\ninput 3 x 3 channels 2\nlift(size=3, b_std=0.1)\nerf\ngroup_pool\ndense(1)"
net = kernelc.compile(spec)
x = np.random.default_rng(0).normal(size=(7, 3, 3, 2))
x2 = np.random.default_rng(1).normal(size=(3, 3, 3, 2))
one = [jax.devices()[0]]
out = {"devices": len(jax.devices())}
for dtype in ("float32", "float64"):
    a = net.kernel_fn(x, dtype=dtype, devices=one)
    b = net.kernel_fn(x, dtype=dtype)  # all four
    out[dtype] = max(float(np.max(np.abs(a[k] - b[k]))) for k in a)
c = net.kernel_fn(x, x2, dtype="float64")  # a cross Gram matrix: 21 pairs, tiles of 24
d = net.kernel_fn(x, x2, dtype="float64", devices=one)
out["cross"] = max(float(np.max(np.abs(c[k] - d[k]))) for k in c)
cross = net.kernel_fn.compiled_passes[True, True, None].compiled.values()
out["cross_devices"] = sorted({len(sh.device_set) for c in cross
                               for sh in jax.tree_util.tree_leaves(c.output_shardings)})
# the float32 precision estimates (host callbacks of each device's own pairs) as on one device:
# erf's per entry, a relu chain's on the host
from kernelc.runtime.driver import precision_estimate
relu = kernelc.compile("group p4\ninput 3 x 3 channels 2\nlift(size=3, b_std=0.1)\nrelu\n"
                       "gconv(size=3, b_std=0.1)\nrelu\ngroup_pool\ndense(1)")
for name, network in (("erf", net), ("relu", relu)):
    rows = []
    for devices in (one, None):
        network.kernel_fn(x, dtype="float32", devices=devices)
        rows.append(precision_estimate())
    out["estimates_" + name] = rows
json.dump(out, sys.stdout)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="XLA_FLAGS host devices: Linux/macOS")
def test_four_devices_give_the_one_device_numbers():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
               JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout)
    assert out["devices"] == 4
    assert out["cross_devices"] == [1, 4]  # one-device runs, and tiles split over all four
    # equal to rounding: a device's slice of a tile is vectorised differently (seen: 2e-17, 1.5e-8)
    assert max(out["float64"], out["cross"]) <= 1e-15 and out["float32"] <= 1e-6, out
    # the precision callbacks run on each device's own pairs (partitioned): no gather of their
    # operands to one device (which XLA warned about), the estimates as on one device
    assert "rematerialization" not in done.stderr, done.stderr[-2000:]
    for name in ("erf", "relu"):
        (nngp1, ntk1, rows1), (nngp4, ntk4, rows4) = out["estimates_" + name]
        assert nngp1 > 0 and [r[0] for r in rows1] == [r[0] for r in rows4], out
        np.testing.assert_allclose([nngp4, ntk4], [nngp1, ntk1], rtol=1e-3)
        np.testing.assert_allclose([r[1:] for r in rows4], [r[1:] for r in rows1], rtol=1e-3)


def test_devices_must_be_jax_devices():
    net = kernelc.compile("group Z2\ninput 2 x 2 channels 1\nflatten\ndense(1)")
    x = np.ones((2, 2, 2, 1))
    for bad in ([], ["cpu"], 3):
        with pytest.raises(InputError, match="devices must be a non-empty list of JAX devices"):
            net.kernel_fn(x, devices=bad)
