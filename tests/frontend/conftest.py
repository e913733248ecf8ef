"""Shared helpers of the front-end tests."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import sympy

SPEC_DIR = Path(__file__).resolve().parents[2] / "specs"
SPEC_PATHS = sorted(SPEC_DIR.glob("*.kc"))

#: A header that every small test spec starts with.
P4_HEADER = "network t\ngroup p4\ninput 8 x 8 channels 1\n"


def strip_spans(node):
    """``node`` with every ``span`` set to None, recursively (AST dataclasses, tuples)."""
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        changes = {}
        for f in dataclasses.fields(node):
            value = getattr(node, f.name)
            if f.name == "span":
                changes[f.name] = None
            elif f.name not in ("source",):
                changes[f.name] = strip_spans(value)
        return dataclasses.replace(node, **changes)
    if isinstance(node, tuple):
        return tuple(strip_spans(v) for v in node)
    if isinstance(node, sympy.Basic):
        # the printer writes Floats as doubles; compare them at double precision
        return node.xreplace({f: sympy.Float(float(f), 15) for f in node.atoms(sympy.Float)})
    return node


@pytest.fixture(params=SPEC_PATHS, ids=[p.name for p in SPEC_PATHS])
def spec_path(request) -> Path:
    return request.param
