"""Robustness of the front end: whatever text it gets, ``check()`` either returns a typed graph
or raises a :class:`KernelcError` with a usable span; never any other exception, never a hang.

Random text (``st.text``) and mutated versions of the shipped specs (character deletions and
insertions, duplicated/dropped lines, tokens replaced by or swapped with keywords, numbers,
braces and layer names) are fed to ``check()``. The explicit regression tests at the bottom are
the inputs that used to escape as other exceptions (or hang) before the front end was fixed.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kernelc.errors import GroupError, KernelcError, ShapeError, SpecError
from kernelc.frontend import check

SPEC_DIR = Path(__file__).resolve().parents[2] / "specs"
SPEC_TEXTS = {p.name: p.read_text() for p in sorted(SPEC_DIR.glob("*.kc"))}

FUZZ = settings(max_examples=150, deadline=None, derandomize=False,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much])

KEYWORDS = ["network", "group", "input", "channels", "x", "parameterization", "ntk", "standard",
            "let", "repeat", "residual", "concat", "branch", "generators", "trivial",
            "hexagonal", "square", "chanels", "reisdual"]
NUMBERS = ["0", "1", "2", "3", "4", "5", "-1", "0.5", ".5", "1e3", "1e400", "32", "99999999",
           "2.0", "-0", "sqrt(2)", "pi", "9**9**9"]
PUNCTUATION = ["{", "}", "(", ")", "[", "]", ",", ";", "=", "*", "/", "**", "^", "+", "-", "#",
               "//", "\n", " x ", "[[0,-1],[1,0]]", "[(0,0),(1,0)]"]
LAYERS = ["lift", "gconv", "conv", "dense", "relu", "group_pool", "avg_pool", "flatten", "phi",
          "leaky_relu", "poly", "erf", "gelu", "identity", "gcnov", "phi(x*sigmoid(x))",
          "size", "W_std", "b_std", "padding", "same", "valid", "circular", "support",
          "rotations", "width", "degree", "all", "p4", "p4m", "p6", "O", "Z2", "Z3", "p2", "p5"]
VOCAB = KEYWORDS + NUMBERS + PUNCTUATION + LAYERS

TOKEN = re.compile(r"\w+(?:\.\d*)?|\*\*|//|\S")


def assert_only_kernelc_errors(text: str):
    """check(text) must succeed or raise a KernelcError whose rendering is sane."""
    try:
        tg = check(text)
    except KernelcError as err:
        rendered = str(err)
        assert err.message in rendered
        if err.span is not None:
            assert err.span.line >= 1 and err.span.column >= 1 and err.span.length >= 1
            assert rendered.startswith(f"{err.span.filename}:{err.span.line}:{err.span.column}:")
            lines = text.split("\n")
            assert err.span.line <= max(1, len(lines))
            if err.span.source_line:
                assert err.span.source_line == lines[err.span.line - 1].rstrip("\r")
        return None
    assert tg.output_type.domain in ("box", "group", "vector")
    tg.summary()
    return tg


# -- mutation strategy -----------------------------------------------------------------------

def _apply(text: str, op: tuple) -> str:
    kind, a, b, word = op
    if kind == "delete_char" and text:
        i = a % len(text)
        return text[:i] + text[i + 1:]
    if kind == "insert_char":
        i = a % (len(text) + 1)
        return text[:i] + word + text[i:]
    lines = text.split("\n")
    if kind == "duplicate_line" and lines:
        i = a % len(lines)
        return "\n".join(lines[:i + 1] + [lines[i]] + lines[i + 1:])
    if kind == "drop_line" and lines:
        i = a % len(lines)
        return "\n".join(lines[:i] + lines[i + 1:])
    if kind == "swap_lines" and len(lines) > 1:
        i, j = a % len(lines), b % len(lines)
        lines[i], lines[j] = lines[j], lines[i]
        return "\n".join(lines)
    spans = [m.span() for m in TOKEN.finditer(text)]
    if not spans:
        return text + word
    i, j = spans[a % len(spans)], spans[b % len(spans)]
    if kind == "replace_token":
        return text[:i[0]] + word + text[i[1]:]
    if kind == "insert_token":
        return text[:i[0]] + word + " " + text[i[0]:]
    if kind == "delete_token":
        return text[:i[0]] + text[i[1]:]
    if kind == "swap_tokens" and i != j:
        (i, j) = sorted((i, j))
        return (text[:i[0]] + text[j[0]:j[1]] + text[i[1]:j[0]] + text[i[0]:i[1]]
                + text[j[1]:])
    return text


OPS = st.tuples(
    st.sampled_from(["delete_char", "insert_char", "duplicate_line", "drop_line", "swap_lines",
                     "replace_token", "insert_token", "delete_token", "swap_tokens"]),
    st.integers(0, 10_000), st.integers(0, 10_000),
    st.one_of(st.sampled_from(VOCAB), st.characters(blacklist_categories=("Cs",))),
)


@st.composite
def mutated_specs(draw):
    text = SPEC_TEXTS[draw(st.sampled_from(sorted(SPEC_TEXTS)))]
    for op in draw(st.lists(OPS, min_size=1, max_size=6)):
        text = _apply(text, op)
    return text


# Well-formed specs with random layers and arguments reach graph building and type inference.
_WORDS = ["0", "1", "2", "3", "4", "5", "-1", "0.5", "1e3", "2**70", "sqrt(2)", "ws", "log(0)",
          "same", "valid", "circular", "all", "identity", "sam", "[0, 1]", "[]", "(1, 2)",
          "[(0,0)]", "[(0,0),(1,0)]", "[(0,0),(1,0),(0,1),(-1,0),(0,-1)]", "[(0,0,0)]"]
VALUES = st.one_of(st.sampled_from(_WORDS), st.integers(-3, 40).map(str))
X_VALUES = st.sampled_from(["x", "x*sigmoid(x)", "max(x, 0)", "x**3", "(x+1)**20", "0.2"])
ARG = st.one_of(
    VALUES, X_VALUES,
    st.tuples(st.sampled_from(["size", "W_std", "b_std", "padding", "support", "rotations",
                               "width", "degree", "W_sdt"]), VALUES).map("=".join))
LAYER = st.tuples(st.sampled_from(LAYERS[:15]),
                  st.one_of(st.just([]), st.lists(ARG, max_size=2))).map(
    lambda t: t[0] + ("(" + ", ".join(t[1]) + ")" if t[1] else ""))


def _block(children):
    return st.one_of(
        st.tuples(st.integers(1, 3), children).map(lambda t: f"repeat {t[0]} {{\n{t[1]}\n}}"),
        children.map(lambda b: f"residual {{\n{b}\n}}"),
        st.lists(children, min_size=1, max_size=3).map(
            lambda bs: "residual {\n" + "\n".join(f"branch {{ {b} }}" for b in bs) + "\n}"),
        st.lists(children, min_size=2, max_size=3).map(
            lambda bs: "concat {\n" + "\n".join(f"branch {{ {b} }}" for b in bs) + "\n}"))


BODY = st.recursive(st.lists(LAYER, max_size=4).map("\n".join),
                    lambda children: st.lists(st.one_of(LAYER, _block(children)),
                                              min_size=1, max_size=4).map("\n".join),
                    max_leaves=12)
HEADER = st.sampled_from([
    "group p4\ninput 8 x 8 channels 2", "group p4m\ninput 7 x 7 channels 1",
    "group p6\ninput 9 x 9 channels 1", "group Z2\ninput 6 x 10 channels 3",
    "group O\ninput 4 x 4 x 4 channels 1", "group Z4d = trivial 3\ninput 3 x 4 x 5 channels 1",
    "group c2v = generators [[-1,0],[0,1]], [[1,0],[0,-1]]\ninput 6 x 8 channels 1",
    "group p2\ninput 5 x 5 channels 1\nparameterization standard"])


@st.composite
def structured_specs(draw):
    return (draw(HEADER) + "\nlet ws = sqrt(2)\n" + draw(BODY) + "\n"
            + draw(st.sampled_from(["", "group_pool\ndense(3)", "flatten\ndense(1)",
                                    "avg_pool\nflatten\ndense(2)"])))


# -- properties ------------------------------------------------------------------------------

@FUZZ
@given(st.text(max_size=200))
def test_random_text_raises_only_kernelc_errors(text):
    assert_only_kernelc_errors(text)


@FUZZ
@given(st.lists(st.sampled_from(VOCAB), max_size=40).map(" ".join))
def test_vocabulary_soup_raises_only_kernelc_errors(text):
    assert_only_kernelc_errors("network t\ngroup p4\ninput 8 x 8 channels 1\n" + text)


@FUZZ
@given(mutated_specs())
def test_mutated_specs_raise_only_kernelc_errors(text):
    assert_only_kernelc_errors(text)


@FUZZ
@given(structured_specs())
def test_structured_specs_raise_only_kernelc_errors(text):
    assert_only_kernelc_errors(text)


@pytest.mark.parametrize("name", sorted(SPEC_TEXTS))
def test_unmutated_specs_pass(name):
    assert assert_only_kernelc_errors(SPEC_TEXTS[name]) is not None


def test_mutation_operators_change_the_text():
    text = SPEC_TEXTS["p4_histology.kc"]
    assert _apply(text, ("delete_char", 0, 0, "")) == text[1:]
    assert _apply(text, ("replace_token", 0, 0, "gcnov")) == "gcnov" + text[1:]
    swapped = _apply("a b c", ("swap_tokens", 0, 2, ""))
    assert swapped == "c b a"
    assert _apply("l1\nl2", ("duplicate_line", 0, 0, "")) == "l1\nl1\nl2"


# -- regression tests: inputs that escaped as non-KernelcError exceptions (or hung) ------------

H = "network t\ngroup p4\ninput 8 x 8 channels 1\n"

REGRESSIONS = [
    # 9**9**9 was computed exactly by sympy (hours, gigabytes)
    (H + "let a = 9**9**9\nlift\n", SpecError, "too large"),
    # (1/2)**-99999999: OverflowError converting the exact rational to float
    (H + "lift(W_std=(1/2)**-99999999)\n", SpecError, "too large"),
    # max/min of non-comparable numbers: sympy ValueError "not comparable"
    (H + "lift(W_std=max(1, sqrt(-1)))\n", SpecError, "invalid arguments to 'max'"),
    (H + "lift\nphi(min(x, log(0)))\n", SpecError, "invalid arguments to 'min'"),
    # offsets beyond int64: OverflowError in numpy
    (H + "lift(support=[(0,0),(99999999999999999999,0)])\n", SpecError, "offsets must lie"),
    # generator entries beyond int64: OverflowError in the group closure
    ("group g = generators [[1,99999999999999999999],[0,1]]\ninput 8 x 8 channels 1\nlift\n",
     GroupError, "too large"),
    # size=1e300: OverflowError; size=99999: MemoryError building k^d offsets
    (H + "lift(size=1e300)\n", ShapeError, "offsets; at most"),
    (H + "lift(size=99999)\n", ShapeError, "offsets; at most"),
    # a huge input box: MemoryError in the site permutation
    ("group p4\ninput 99999 x 99999 channels 1\nlift\n", SpecError, "sites; at most"),
    # repeat 99999999 { relu }: unrolling never finished
    (H + "lift\nrepeat 99999999 { relu }\n", SpecError, "unrolls to more than"),
    (H + "lift\nrepeat 1000 { repeat 1000 { } }\n", SpecError, "unrolls to more than"),
    # deep nesting: RecursionError in the AST builder
    (H + "lift(W_std=" + "-" * 5000 + "1)\n", SpecError, "nested too deeply"),
    (H + "lift\n" + "residual {\n" * 2000 + "gconv\n" + "}\n" * 2000, SpecError,
     "nested too deeply"),
    (H + "lift(support=" + "[" * 3000 + "1" + "]" * 3000 + ")\n", SpecError,
     "nested too deeply"),
    # a dense high-degree polynomial phi took minutes in the exact-moment rule
    (H + "lift\nphi((x+1)**64)\n", SpecError, "polynomial of degree above"),
    (H + "lift\nphi(((x+1)**5 + 1)**5)\n", SpecError, "polynomial of degree above"),
    (H + "lift\npoly(" + ", ".join(["1"] * 40) + ")\n", SpecError, "at most"),
    # an infinite or complex constant inside phi(...) was accepted silently
    (H + "lift\nphi(log(0)*x)\n", SpecError, "infinite, undefined or complex"),
    (H + "lift\nphi(sqrt(-1)*x)\n", SpecError, "infinite, undefined or complex"),
    # a file name too long for the OS: OSError from pathlib
    ("a" * 5000 + ".kc", SpecError, "cannot read spec file"),
]


@pytest.mark.parametrize("text,cls,fragment", REGRESSIONS,
                         ids=[f"regression{i}" for i in range(len(REGRESSIONS))])
def test_regressions(text, cls, fragment):
    with pytest.raises(cls) as info:
        check(text)
    assert fragment in info.value.message
    assert_only_kernelc_errors(text)


def test_form_feed_keeps_error_lines_right():
    # lark counts lines at '\n' only; str.splitlines() also splits at '\f' (and '\x1c', '\u2028'),
    # which made the span show the wrong source line.
    text = "group p4\f\ninput 9 x 9 channels 1\nlift(size=4)\n"
    with pytest.raises(ShapeError) as info:
        check(text)
    assert info.value.span.line == 3
    assert info.value.span.source_line == "lift(size=4)"


def test_crlf_source_lines_have_no_carriage_return():
    text = "group p4\r\ninput 9 x 9 channels 1\r\nlift(size=4)\r\n"
    with pytest.raises(ShapeError) as info:
        check(text)
    assert info.value.span.source_line == "lift(size=4)"


def test_unreadable_spec_file(tmp_path):
    bad = tmp_path / "latin1.kc"
    bad.write_bytes(b"network caf\xe9\n")
    with pytest.raises(SpecError, match="cannot read spec file"):
        check(str(bad))
    with pytest.raises(SpecError, match="no such spec file"):
        check(str(tmp_path / "missing.kc"))


# -- the seeded mutation corpus (issue 15): deterministic, so it can grow and be replayed ------

_OP_KINDS = ["delete_char", "insert_char", "duplicate_line", "drop_line", "swap_lines",
             "replace_token", "insert_token", "delete_token", "swap_tokens"]
_CHARS = "{}()[],;=*/+-#.\n\t \"'\\x0123456789é\u2028\ufeff"


def seeded_mutant(seed: int) -> str:
    """Mutant number ``seed``: a shipped spec with 1–6 mutation operators drawn from a seeded
    numpy generator (the same text on every machine)."""
    rng = np.random.default_rng(seed)
    names = sorted(SPEC_TEXTS)
    text = SPEC_TEXTS[names[rng.integers(len(names))]]
    for _ in range(int(rng.integers(1, 7))):
        kind = _OP_KINDS[rng.integers(len(_OP_KINDS))]
        word = VOCAB[rng.integers(len(VOCAB))] if rng.random() < 0.8 else \
            _CHARS[rng.integers(len(_CHARS))]
        text = _apply(text, (kind, int(rng.integers(10_000)), int(rng.integers(10_000)), word))
    return text


CORPUS_CHUNKS = 4
CORPUS_PER_CHUNK = 500  # 2,000 mutants through check() in every CI run


@pytest.mark.parametrize("chunk", range(CORPUS_CHUNKS))
def test_seeded_mutation_corpus_through_check(chunk):
    accepted = 0
    for seed in range(chunk * CORPUS_PER_CHUNK, (chunk + 1) * CORPUS_PER_CHUNK):
        try:
            accepted += assert_only_kernelc_errors(seeded_mutant(seed)) is not None
        except AssertionError as exc:  # name the mutant so that it can be replayed
            raise AssertionError(f"mutant {seed}: {seeded_mutant(seed)!r}") from exc
    assert 0 < accepted < CORPUS_PER_CHUNK  # both outcomes occur: the corpus is not trivial


@pytest.mark.slow
def test_seeded_mutants_through_compile_and_a_tiny_kernel():
    """The first 100 accepted mutants compile, and their kernels on two random inputs are
    finite or refused with a KernelcError (never another exception)."""
    import kernelc
    done, seed = 0, 10_000
    while done < 100:
        text = seeded_mutant(seed)
        seed += 1
        if assert_only_kernelc_errors(text) is None:
            continue
        done += 1
        try:
            net = kernelc.compile(text)
            spec = net.spec
            shape = tuple(spec.input.shape) + (spec.input.channels,)
            x = np.random.default_rng(seed).normal(size=(2,) + shape)
            out = net.kernel_fn(x, dtype="float64", max_memory="2GB")
            assert all(np.all(np.isfinite(v)) for v in out.values()), seed
        except KernelcError:
            pass


def campaign(lo: int, hi: int) -> str:
    """Mutants lo..hi-1 through check(): outcomes, exceptions other than KernelcError, refusals
    without a position, and CPU time (the campaign of issue 15; run it as
    ``python -m tests.frontend.test_fuzz 0 12000``)."""
    import time
    accepted = refused = unpositioned = 0
    others, slow, worst = [], [], (0.0, None)
    for seed in range(lo, hi):
        text = seeded_mutant(seed)
        start = time.process_time()
        try:
            check(text)
            accepted += 1
        except KernelcError as err:
            refused += 1
            unpositioned += err.span is None
        except Exception as exc:  # noqa: BLE001 - counting what escapes is the point
            others.append(f"{seed}: {type(exc).__name__}: {exc}")
        spent = time.process_time() - start
        worst = max(worst, (spent, seed), key=lambda w: w[0])
        if spent > 20:
            slow.append(seed)
    lines = [f"mutants {lo}..{hi - 1}: {accepted} accepted, {refused} refused "
             f"({unpositioned} without a position), {len(others)} other exceptions, "
             f"{len(slow)} over 20 CPU-s; slowest {worst[0]:.2f} CPU-s (mutant {worst[1]})"]
    return "\n".join(lines + others[:20])


if __name__ == "__main__":  # pragma: no cover - a command, not a test
    import sys
    print(campaign(int(sys.argv[1]), int(sys.argv[2])))
