"""Price's theorem's results for the built-in closed-form maps, stored (rules as data).

``nonlinearities._price`` reads K̇ = ∂K⁺/∂k12 here when K⁺ is one of these (by srepr) and
derives it otherwise (:func:`~kernelc.rules.nonlinearities.derive_price`: a user's φ,
leaky_relu's slopes, a K⁺ another sympy writes in another canonical form). Why stored: the
derivation simplifies, and sympy.simplify's first call in a process imports
sympy.physics.units, ~0.15 s of every kernelc.compile of a relu network.
tests/rules/test_price_memo.py derives every entry again and compares;
``python -c "from kernelc.rules.price_memo import main; main()"`` rewrites the table from the
derivations.
"""
import re
import sys

#: the sympy that derived the table (main() writes it; another one may simplify to another form of
#: the same K̇, which the table then keeps: the generated code stays the same)
PRICE_MEMO_SYMPY = '1.14.0'
#: srepr(K⁺) -> srepr(K̇), one entry per closed form of kernelc.rules.nonlinearities (written by
#: main(); do not edit by hand)
PRICE_MEMO = {
    "Add(Mul(Integer(-1), Symbol('k12', real=True)), Mul(Integer(2), Pow(pi, Integer(-1)), Add(Mul(Symbol('k12', real=True), Add(pi, Mul(Integer(-1), acos(Mul(Pow(Symbol('k11', positive=True), Rational(-1, 2)), Symbol('k12', real=True), Pow(Symbol('k22', positive=True), Rational(-1, 2))))))), Pow(Add(Mul(Symbol('k11', positive=True), Symbol('k22', positive=True)), Mul(Integer(-1), Pow(Symbol('k12', real=True), Integer(2)))), Rational(1, 2)))))":
        "Mul(Pow(pi, Integer(-1)), Add(pi, Mul(Integer(-1), Integer(2), acos(Mul(Pow(Symbol('k11', positive=True), Rational(-1, 2)), Symbol('k12', real=True), Pow(Symbol('k22', positive=True), Rational(-1, 2)))))))",
    "Mul(exp(Add(Mul(Integer(-1), Rational(1, 2), Symbol('k11', positive=True)), Mul(Integer(-1), Rational(1, 2), Symbol('k22', positive=True)))), cosh(Symbol('k12', real=True)))":
        "Mul(exp(Add(Mul(Integer(-1), Rational(1, 2), Symbol('k11', positive=True)), Mul(Integer(-1), Rational(1, 2), Symbol('k22', positive=True)))), sinh(Symbol('k12', real=True)))",
    "Mul(Integer(2), Pow(pi, Integer(-1)), asin(Mul(Integer(2), Symbol('k12', real=True), Pow(Add(Mul(Integer(2), Symbol('k11', positive=True)), Integer(1)), Rational(-1, 2)), Pow(Add(Mul(Integer(2), Symbol('k22', positive=True)), Integer(1)), Rational(-1, 2)))))":
        "Mul(Integer(4), Pow(pi, Integer(-1)), Pow(Add(Mul(Integer(-1), Integer(4), Pow(Symbol('k12', real=True), Integer(2))), Mul(Add(Mul(Integer(2), Symbol('k11', positive=True)), Integer(1)), Add(Mul(Integer(2), Symbol('k22', positive=True)), Integer(1)))), Rational(-1, 2)))",
    "Add(Mul(Rational(1, 2), Pow(pi, Integer(-1)), Symbol('k12', real=True), asin(Mul(Pow(Symbol('a', positive=True), Rational(-1, 2)), Pow(Symbol('b', positive=True), Rational(-1, 2)), Symbol('k12', real=True)))), Mul(Rational(1, 4), Symbol('k12', real=True)), Mul(Rational(1, 2), Pow(pi, Integer(-1)), Pow(Symbol('a', positive=True), Integer(-1)), Pow(Symbol('b', positive=True), Integer(-1)), Add(Pow(Symbol('k12', real=True), Integer(2)), Mul(Add(Symbol('a', positive=True), Integer(-1)), Add(Symbol('b', positive=True), Integer(-1)), Add(Mul(Symbol('a', positive=True), Symbol('b', positive=True)), Mul(Integer(-1), Pow(Symbol('k12', real=True), Integer(2)))))), Pow(Add(Mul(Symbol('a', positive=True), Symbol('b', positive=True)), Mul(Integer(-1), Pow(Symbol('k12', real=True), Integer(2)))), Rational(-1, 2))))":
        "Add(Mul(Rational(1, 2), Pow(pi, Integer(-1)), asin(Mul(Pow(Symbol('a', positive=True), Rational(-1, 2)), Pow(Symbol('b', positive=True), Rational(-1, 2)), Symbol('k12', real=True)))), Mul(Rational(1, 4), Pow(pi, Integer(-1)), Pow(Symbol('a', positive=True), Integer(-1)), Pow(Symbol('b', positive=True), Integer(-1)), Pow(Add(Mul(Symbol('a', positive=True), Symbol('b', positive=True)), Mul(Integer(-1), Pow(Symbol('k12', real=True), Integer(2)))), Rational(-3, 2)), Add(Mul(pi, Pow(Symbol('a', positive=True), Integer(2)), Pow(Symbol('b', positive=True), Integer(2)), Pow(Add(Mul(Symbol('a', positive=True), Symbol('b', positive=True)), Mul(Integer(-1), Pow(Symbol('k12', real=True), Integer(2)))), Rational(1, 2))), Mul(Integer(2), Pow(Symbol('a', positive=True), Integer(2)), Symbol('b', positive=True), Symbol('k12', real=True)), Mul(Integer(2), Symbol('a', positive=True), Pow(Symbol('b', positive=True), Integer(2)), Symbol('k12', real=True)), Mul(Integer(-1), pi, Symbol('a', positive=True), Symbol('b', positive=True), Pow(Symbol('k12', real=True), Integer(2)), Pow(Add(Mul(Symbol('a', positive=True), Symbol('b', positive=True)), Mul(Integer(-1), Pow(Symbol('k12', real=True), Integer(2)))), Rational(1, 2))), Mul(Integer(2), Symbol('a', positive=True), Symbol('b', positive=True), Symbol('k12', real=True)), Mul(Integer(-1), Integer(2), Symbol('a', positive=True), Pow(Symbol('k12', real=True), Integer(3))), Mul(Integer(-1), Integer(2), Symbol('b', positive=True), Pow(Symbol('k12', real=True), Integer(3))))))",
    "Symbol('k12', real=True)":
        'Integer(1)',
    "Mul(Rational(1, 2), Pow(pi, Integer(-1)), Add(Mul(Symbol('k12', real=True), Add(pi, Mul(Integer(-1), acos(Mul(Pow(Symbol('k11', positive=True), Rational(-1, 2)), Symbol('k12', real=True), Pow(Symbol('k22', positive=True), Rational(-1, 2))))))), Pow(Add(Mul(Symbol('k11', positive=True), Symbol('k22', positive=True)), Mul(Integer(-1), Pow(Symbol('k12', real=True), Integer(2)))), Rational(1, 2))))":
        "Mul(Rational(1, 2), Pow(pi, Integer(-1)), Add(pi, Mul(Integer(-1), acos(Mul(Pow(Symbol('k11', positive=True), Rational(-1, 2)), Symbol('k12', real=True), Pow(Symbol('k22', positive=True), Rational(-1, 2)))))))",
    "Mul(exp(Add(Mul(Integer(-1), Rational(1, 2), Symbol('k11', positive=True)), Mul(Integer(-1), Rational(1, 2), Symbol('k22', positive=True)))), sinh(Symbol('k12', real=True)))":
        "Mul(exp(Add(Mul(Integer(-1), Rational(1, 2), Symbol('k11', positive=True)), Mul(Integer(-1), Rational(1, 2), Symbol('k22', positive=True)))), cosh(Symbol('k12', real=True)))",
}


def derived() -> dict:
    """{srepr(K⁺): srepr(K̇)} as :func:`~kernelc.rules.nonlinearities.derive_price` gives it
    now, for every closed-form entry, in the table's order (by name)."""
    import sympy
    from kernelc.rules.nonlinearities import CLOSED_FORMS, derive_price
    table = {}
    for name in sorted(CLOSED_FORMS):
        nngp = CLOSED_FORMS[name]()[1]
        table[sympy.srepr(nngp)] = sympy.srepr(derive_price(nngp))
    return table


def main():
    """Rewrite PRICE_MEMO in this file from :func:`derived`."""
    path = __file__
    with open(path, encoding="utf-8") as f:
        source = f.read()
    import sympy
    head, rest = source.split("PRICE_MEMO = {\n", 1)
    head = re.sub(r"^PRICE_MEMO_SYMPY = .*$", f"PRICE_MEMO_SYMPY = {sympy.__version__!r}", head,
                  flags=re.M)
    tail = rest[re.search(r"^}\n", rest, re.M).end():]  # after the table's closing brace
    table = derived()
    body = "".join(f"    {k!r}:\n        {v!r},\n" for k, v in table.items())
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"{head}PRICE_MEMO = {{\n{body}}}\n{tail}")
    print(f"wrote {len(table)} entries to {path}", file=sys.stderr)

