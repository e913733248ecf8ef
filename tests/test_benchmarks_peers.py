"""benchmarks/peers.py without its peers' environment: the peer's half is skipped with a message
saying why, exit status 0, and kernelc's half still runs and prints its timings (issue 16,
item 5). Tiny sizes (2 images 4×4, one process, one compiled call): a few seconds."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # a benchmark script in a subprocess (~9 s): kept out of the fast suite
def test_missing_peer_python_skips_the_peer_half():
    missing = ROOT / "no-such-env" / "bin" / "python"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "peers.py"), "--peer-python", str(missing),
         "--workloads", "cnn_gap", "--n", "2", "--size", "4", "--repeats", "1", "--calls", "1"],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(  # this checkout's kernelc
            [str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p])})
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    assert "SKIPPED the peer's half: neural-tangents does not import with" in out
    assert "does not run" in out  # the reason: the interpreter is not there
    rows = [ln.split() for ln in out.splitlines() if ln.startswith("kernelc ")]
    assert len(rows) == 1 and float(rows[0][1]) > 0  # kernelc's steady time was measured
    assert not any(ln.startswith("peer ") for ln in out.splitlines())
