"""Golden files: generated/ holds the modules of every spec in specs/, byte for byte.

Regenerate with ``for s in specs/*.kc; do kernelc compile $s; done`` after a deliberate change.
"""
from pathlib import Path

import pytest

import kernelc

ROOT = Path(__file__).resolve().parents[1]
SPECS = sorted((ROOT / "specs").glob("*.kc"))


def test_every_spec_has_a_generated_module():
    assert SPECS, "no specs found"
    missing = [s.stem for s in SPECS if not (ROOT / "generated" / f"{s.stem}.py").is_file()]
    assert not missing, f"generated/ lacks modules for {missing}"


@pytest.mark.parametrize("spec", SPECS, ids=[s.stem for s in SPECS])
def test_generated_module_is_up_to_date(spec):
    fresh = kernelc.compile(spec).source
    stored = (ROOT / "generated" / f"{spec.stem}.py").read_text()
    assert fresh == stored, (f"generated/{spec.stem}.py is stale: run "
                             f"`kernelc compile specs/{spec.name}` and commit the result")


def test_generation_is_deterministic():
    a = kernelc.compile(SPECS[0]).source
    b = kernelc.compile(SPECS[0]).source
    assert a == b
