"""The family protocol: recognising a group's family, the input and signal domains, the texts."""
import pytest

from kernelc.errors import KernelcError
from kernelc.families import (FAMILIES, LATTICE, SO3_FAMILY, STEERABLE, VECTOR, domain,
                              family_of, family_of_input, register_family)
from kernelc.frontend.types import SignalType
from kernelc.groups import LatticeGroup, builtin_groups, get_group


def test_the_registered_families_in_order():
    assert list(FAMILIES) == ["lattice", "so3", "steerable"]


@pytest.mark.parametrize("name", sorted(builtin_groups()))
def test_every_builtin_group_has_its_family(name):
    group = get_group(name)
    expected = {"SO3": SO3_FAMILY, "C8": STEERABLE, "D8": STEERABLE, "C16": STEERABLE,
                "D16": STEERABLE}
    assert family_of(group) is expected.get(name, LATTICE)


def test_any_cn_or_dn_is_a_steerable_group_by_name():
    assert family_of(get_group("C12")) is STEERABLE and get_group("D3").order == 6
    assert get_group("C12") is get_group("C12")  # one object per name


def test_a_user_declared_group_is_a_lattice_group():
    assert family_of(LatticeGroup.from_generators("c2", 2, [((-1, 0), (0, -1))])) is LATTICE


def test_an_object_of_no_family_is_refused():
    with pytest.raises(KernelcError, match="belongs to no registered group family"):
        family_of(object())


def test_a_family_registered_twice_is_refused():
    with pytest.raises(KernelcError, match="registered twice"):
        register_family(LATTICE)


def test_input_domains_name_their_family():
    assert family_of_input("box") is LATTICE and family_of_input("sphere") is SO3_FAMILY
    with pytest.raises(KernelcError, match="no group family takes inputs on 'so3'"):
        family_of_input("so3")


@pytest.mark.parametrize("signal, text", [
    (SignalType("box", (4, 5), 3), "Z^2 box 4×5 ×3"),
    (SignalType("group", (4, 4), None, 8), "G (|H|=8) on box 4×4 ×∞"),
    (SignalType("sphere", (8, 8), 10, 0, 4), "S² band 4 (grid 8×8) ×10"),
    (SignalType("so3", (8, 8, 8), None, 0, 4), "SO(3) band 4 (grid 8×8×8) ×∞"),
    (SignalType("vector", (), 7), "vector[7]"),
])
def test_signal_types_are_described_by_their_domain(signal, text):
    assert signal.describe() == text


def test_domain_words_and_unknown_domains():
    assert domain("sphere").words == "the sphere S²" and domain("vector") is VECTOR
    with pytest.raises(KernelcError, match="unknown signal domain 'torus'"):
        domain("torus")


def test_order_and_input_texts():
    assert LATTICE.order_text(get_group("p4m")) == "|H|=8"
    assert SO3_FAMILY.order_text(get_group("SO3")) == "continuous"
    assert LATTICE.describe_input(SignalType("box", (32, 32), 3)) == "32×32×3"
    assert SO3_FAMILY.describe_input(SignalType("sphere", (12, 12), 10, 0, 6)) == \
        "S² band 6 (grid 12×12)×10"


def test_input_mismatch_messages_name_the_other_family():
    p4, so3 = get_group("p4"), get_group("SO3")
    assert LATTICE.input_mismatch(p4, SO3_FAMILY) == (
        "sphere inputs need a group that acts on the sphere (SO3), not p4", "group SO3")
    assert SO3_FAMILY.input_mismatch(so3, LATTICE) == (
        "group SO3 acts on signals on the sphere: declare 'input sphere bandlimit L channels C'",
        None)
