"""explain's wall-time estimate for an N×N Gram matrix: rough (a stored throughput) by default,
measured on this machine with calibrate=True / --calibrate (issue 12 item 6)."""
import re

import pytest

import kernelc
from kernelc.cli import main
from kernelc.errors import ExplainError
from kernelc.explain import (REFERENCE_FLOPS_PER_SECOND, format_seconds, explain, gram_pairs,
                             pair_cost)

SPEC = "network tiny\ngroup p4\ninput 3 x 3 channels 1\nlift(size=3)\nrelu\ngroup_pool\ndense(1)\n"


@pytest.fixture(scope="module")
def net():
    return kernelc.compile(SPEC)


def test_rough_time_from_the_stored_throughput_is_labelled(net):
    text = net.explain(n=1000)
    total = (499_500 + 1000) * pair_cost(net.derivation)["flops"]
    expected = format_seconds(total / REFERENCE_FLOPS_PER_SECOND)
    assert (f"time, rough: ~{expected} at {REFERENCE_FLOPS_PER_SECOND / 1e9:g} GFLOP/s, the "
            "throughput measured on 2 cores of an AMD EPYC CPU") in text
    assert "not measured here; --calibrate (calibrate=True) times one tile here" in text


def test_calibrated_estimate_extrapolates_the_measured_seconds_per_pair(net):
    """The arithmetic, with a fixed measurement: padded tiles × tile pairs + N self pairs."""
    asked = []

    def calibrate(max_pairs):
        asked.append(max_pairs)
        return {"inputs": 10, "pairs": 55, "first_call_seconds": 3.0, "compile_seconds": 2.5,
                "seconds": 0.5, "seconds_per_pair": 0.01}
    plan = net.module.plan_memory(1000, None, "float32", "64MB", True)
    text = explain(net.derivation, n=1000, max_memory="64MB", plan_memory=net.module.plan_memory,
                   calibrate=calibrate)
    tile = plan["tile_pairs"]
    run_pairs = -(-499_500 // tile) * tile
    assert asked and asked[0] <= tile  # the sample fits in one tile of the full run
    assert (f"time on this machine (calibrated): {format_seconds((run_pairs + 1000) * 0.01)} for "
            "the whole Gram matrix, compile time excluded; measured 10 ms per pair on 10 random "
            f"inputs (55 pairs in one tile, the full run's tile holds {tile:,}; best compiled run "
            "0.5 s); compiling took 2.5 s here") in text
    assert "time, rough" not in text


def test_calibration_times_the_compiled_network_here(net):
    text = net.explain(n=200, calibrate=True)
    line = next(x for x in text.splitlines() if "time on this machine (calibrated)" in x)
    per_pair_ms = float(re.search(r"measured ([\d.e+-]+) ms per pair", line).group(1))
    inputs, pairs = map(int, re.search(r"on (\d+) random inputs \((\d+) pairs", line).groups())
    assert pairs == sum(gram_pairs(inputs, True)) and 0 < per_pair_ms < 1e4
    compile_s = float(re.search(r"compiling took ([\d.]+) s", line).group(1))
    assert compile_s >= 0


def test_calibration_needs_n(net, capsys):
    with pytest.raises(ExplainError, match="a time calibration needs the Gram matrix size n"):
        net.explain(calibrate=True)
    assert main(["explain", "specs/p2_small.kc", "--calibrate"]) != 0
    assert "a time calibration needs the Gram matrix size n (CLI: --n N)" in capsys.readouterr().err


def test_format_seconds_reads_like_a_duration():
    assert [format_seconds(s) for s in (0.042, 3.14, 720, 5.2 * 3600, 3.4 * 86400)] == \
        ["42 ms", "3.1 s", "12.0 min", "5.2 h", "3.4 days"]
