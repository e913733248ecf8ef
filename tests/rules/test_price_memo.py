"""The stored results of Price's theorem (kernelc.rules.price_memo) against the derivation."""
import pytest
import sympy

from kernelc.rules import nonlinearities
from kernelc.rules.nonlinearities import CLOSED_FORMS, derive_price, k12
from kernelc.rules.price_memo import PRICE_MEMO, PRICE_MEMO_SYMPY, derived


def test_the_stored_table_is_the_derivation():
    # a K⁺ or a simplification that changed: rewrite the table with
    # python -c "from kernelc.rules.price_memo import main; main()"
    if sympy.__version__ != PRICE_MEMO_SYMPY:  # its forms may differ; the test below still holds
        pytest.skip(f"the table was derived with sympy {PRICE_MEMO_SYMPY}, this is "
                    f"{sympy.__version__}")
    assert PRICE_MEMO == derived()
    assert len(PRICE_MEMO) == len(CLOSED_FORMS)


def test_a_stored_kdot_is_the_derivative_of_its_nngp():
    # independent of derive_price's simplification: K̇ − ∂K⁺/∂k12 simplifies to 0
    for nngp, kdot in PRICE_MEMO.items():
        nngp, kdot = sympy.sympify(nngp), sympy.sympify(kdot)
        assert sympy.simplify(kdot - sympy.diff(nngp, k12)) == 0, nngp


def test_price_reads_the_table_and_derives_what_is_not_in_it(monkeypatch):
    calls = []

    def counted(nngp, polynomial=False):
        calls.append(nngp)
        return derive_price(nngp, polynomial)

    monkeypatch.setattr(nonlinearities, "derive_price", counted)
    price = nonlinearities._price.__wrapped__  # without the per-process cache
    for name, fn in CLOSED_FORMS.items():
        nngp = fn()[1]
        stored = PRICE_MEMO.get(sympy.srepr(nngp))
        assert price(nngp) == (sympy.sympify(stored) if stored else derive_price(nngp)), name
    if sympy.__version__ == PRICE_MEMO_SYMPY:
        assert calls == []  # every closed form from the table
    other = nonlinearities.k12 ** 3 * nonlinearities.k11
    assert price(other) == 3 * nonlinearities.k12 ** 2 * nonlinearities.k11
    assert calls == [other]
