"""The built-in group table and name lookup."""
import pytest

from kernelc.errors import GroupError, SpecError, SourceSpan
from kernelc.families import SO3_FAMILY, family_of
from kernelc.groups import LatticeGroup, builtin_groups, get_group, register_group
from kernelc.groups import registry


def test_builtins_are_the_seven_lattice_groups_so3_and_four_steerable_groups():
    groups = builtin_groups()
    steerable = ["C8", "D8", "C16", "D16"]
    assert list(groups) == sorted(["Z2", "p2", "p4", "p4m", "p6", "Z3", "O", "SO3"] + steerable)
    assert all(g.name == k for k, g in groups.items())
    assert all(isinstance(g, LatticeGroup) for k, g in groups.items()
               if k not in ["SO3"] + steerable)
    assert family_of(groups["SO3"]) is SO3_FAMILY
    assert get_group("p6").lattice == "hexagonal"
    assert get_group("O").dim == 3 and get_group("Z3").dim == 3
    assert "plain CNN" in get_group("Z2").description


def test_unknown_group_suggests():
    span = SourceSpan(1, 7, 3, source_line="group p4n")
    with pytest.raises(SpecError) as info:
        get_group("p4n", span)
    err = info.value
    assert err.message == "unknown group 'p4n'" and err.span is span
    assert "did you mean 'p4'" in err.suggestion
    assert set(err.expected) == set(builtin_groups())
    assert "expected one of:" in str(err)


def test_register_twice_is_an_error():
    with pytest.raises(GroupError, match="already registered"):
        register_group("p4", 2, [[[0, -1], [1, 0]]])


def test_register_new_group_is_one_line(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    g = register_group("pm", 2, [[[1, 0], [0, -1]]], description="mirror")
    assert get_group("pm") is g and g.order == 2


def test_register_a_family_group_twice_is_an_error():
    with pytest.raises(GroupError, match="^group error: group 'SO3' is already registered$"):
        registry.register_family_group(get_group("SO3"))
