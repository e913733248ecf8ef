"""benchmarks/first_call.py on a tiny network: every phase printed, and they fit in the call
(trace, lower and the wait for XLA are parts of the first call)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # a benchmark script in a subprocess (~8 s): kept out of the fast suite
def test_first_call_phases_are_parts_of_the_call():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "first_call.py"), "--workloads", "cnn_gap",
         "--n", "2", "--size", "4", "--repeats", "1"],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(  # this checkout's kernelc
            [str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p])})
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    header = lines[1].split()
    row = dict(zip(["workload", "build", "trace", "lower", "XLA", "waiting", "first", "steady",
                    "compile"], [lines[2].split()[0]] + [float(v) for v in lines[2].split()[1:]]))
    assert header[0] == "workload" and row["workload"] == "cnn_gap"
    assert all(row[k] > 0 for k in ("build", "trace", "lower", "XLA", "first", "steady"))
    assert row["trace"] + row["lower"] + row["waiting"] <= row["first"]
    assert row["compile"] == pytest.approx(row["build"] + row["first"] - row["steady"], abs=2e-3)
