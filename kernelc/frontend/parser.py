"""Spec text -> :class:`~kernelc.frontend.ast.Spec` (stage 1 of the pipeline).

lark parses the text with the grammar in ``grammars/kernelc.lark`` (LALR, contextual lexer); a
transformer turns the parse tree into AST dataclasses with source spans. Expressions are walked
into sympy trees by a whitelist table of operators and functions, so user text is never handed
to ``eval``/``sympify``. Constant expressions are folded to numbers here; only the argument of
``phi(...)`` keeps the free variable ``x``.
"""
from __future__ import annotations

import functools
import hashlib
import math
import os
from importlib import resources
from pathlib import Path
from typing import Any, Dict, Mapping, Union

import lark
import numpy as np
import sympy

from ..errors import GroupError, SourceSpan, SpecError, SpecSyntaxError, did_you_mean
from ..families import family_of
from ..groups import get_group
from ..runtime.harmonic import MAX_BANDWIDTH
from .ast import Argument, Branches, GroupDecl, InputDecl, Layer, Repeat, Spec, Word

#: The variable of nonlinearity expressions (shared with the rules table).
X = sympy.Symbol("x", real=True)

#: Functions allowed inside expressions: name -> sympy constructor.
FUNCTIONS: Dict[str, Any] = {
    "sqrt": lambda a: sympy.sqrt(a), "exp": sympy.exp, "log": sympy.log, "sin": sympy.sin,
    "cos": sympy.cos, "tan": sympy.tan, "tanh": sympy.tanh, "sinh": sympy.sinh,
    "cosh": sympy.cosh, "erf": sympy.erf, "abs": sympy.Abs, "atan": sympy.atan,
    "sigmoid": lambda a: 1 / (1 + sympy.exp(-a)),
    "softplus": lambda a: sympy.log(1 + sympy.exp(a)),
    # wrapped: sympy.sqrt(a, b) takes b as its 'evaluate' flag, Max()/Min() are -oo/oo
    "max": lambda a, *rest: sympy.Max(a, *rest), "min": lambda a, *rest: sympy.Min(a, *rest),
}
CONSTANTS: Dict[str, sympy.Expr] = {"pi": sympy.pi, "e": sympy.E}

#: Largest input box (number of sites) a spec may declare.
MAX_SITES = 2 ** 18
#: Largest magnitude (in bits) of a power of two numbers; 9**9**9 would take forever exactly.
MAX_POWER_BITS = 4096

_TOKEN_NAMES = {
    "NAME": "a name", "NUMBER": "a number", "INT": "an integer", "SIGNED_INT": "an integer",
    "LBRACE": "'{'", "RBRACE": "'}'", "LPAR": "'('", "RPAR": "')'", "LSQB": "'['",
    "RSQB": "']'", "COMMA": "','", "EQUAL": "'='", "SEMICOLON": "';'", "_SEP": "';'",
    "PLUS": "'+'", "MINUS": "'-'", "STAR": "'*'", "SLASH": "'/'", "LATTICE": "square|hexagonal",
    "$END": "end of file", "__ANON_0": "'**'", "CIRCUMFLEX": "'^'",
}


def grammar_text() -> str:
    """The grammar source: ``grammars/kernelc.lark`` of the source checkout this package lives
    in, else the installed package data ``kernelc.grammars`` (mapped from ``grammars/``).

    The checkout comes first: with an editable install of one checkout, ``kernelc.grammars``
    resolves to *that* checkout's folder even when ``PYTHONPATH`` puts another checkout's
    ``kernelc`` first (a git worktree), which then parsed with the other checkout's grammar."""
    root = Path(__file__).resolve().parents[2]
    checkout = root / "grammars" / "kernelc.lark"
    if checkout.is_file() and (root / "pyproject.toml").is_file():
        return checkout.read_text()
    return resources.files("kernelc.grammars").joinpath("kernelc.lark").read_text()


def parser_cache_dir() -> Union[Path, None]:
    """The folder where lark keeps the built LALR tables between processes: building them takes
    ~0.13 s of a fresh process's first spec, loading them ~13 ms. ``$KERNELC_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/kernelc``, else ``~/.cache/kernelc``: a folder of the user's own (lark's
    ``cache=True`` writes into the shared temporary folder, where another user could leave a
    pickle for it to load). None where it cannot be made: then lark builds the tables each
    time. The file is named by lark's own digest of the grammar, the options and the lark and
    Python versions, and lark checks that digest before it uses a file."""
    folder = os.environ.get("KERNELC_CACHE_DIR")
    if not folder:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        folder = os.path.join(base, "kernelc")
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
    except OSError:
        return None
    return Path(folder) if os.access(folder, os.W_OK) else None


@functools.lru_cache(maxsize=1)
def _lark() -> lark.Lark:
    text = grammar_text()
    options = dict(parser="lalr", propagate_positions=True, maybe_placeholders=True)
    folder = parser_cache_dir()
    if folder is not None:  # lark writes it on the first build, and rebuilds what fails to load
        digest = hashlib.sha256(text.encode()).hexdigest()[:16]  # one file per grammar
        options["cache"] = str(folder / f"parser-{digest}-lark{lark.__version__}.cache")
    return lark.Lark(text, **options)


#: Longest spec text parsed (a network has at most 10,000 layers after unrolling anyway).
MAX_LINES = 20_000
MAX_CHARACTERS = 2_000_000


def parse_spec(text: str, filename: str = "<spec>") -> Spec:
    """Parse a spec text into an AST; raise :class:`SpecSyntaxError`/:class:`SpecError`."""
    if not isinstance(text, str):
        raise SpecError(f"a spec must be text, got {type(text).__name__}")
    # lark counts lines at '\n' only; str.splitlines() also breaks at '\f', '\x1c', '\u2028'...,
    # which would make error spans show the wrong source line.
    lines = [ln[:-1] if ln.endswith("\r") else ln for ln in text.split("\n")]
    if lines and lines[-1] == "":
        lines.pop()
    if len(lines) > MAX_LINES or len(text) > MAX_CHARACTERS:
        # before parsing: lark took ~170 s on 200,000 lines only to reach the node limit
        line = min(len(lines), MAX_LINES + 1)
        raise SpecError(f"the spec is too long ({len(lines)} lines, {len(text)} characters; at "
                        f"most {MAX_LINES} lines and {MAX_CHARACTERS} characters)",
                        _span(lines, filename, line, 1),
                        suggestion="use repeat N { ... } for long stacks of layers")
    try:
        tree = _lark().parse(text)
    except lark.exceptions.UnexpectedInput as exc:
        raise _syntax_error(exc, text, lines, filename) from None
    builder = _Builder(lines, filename)
    try:
        return builder.spec(tree, text)
    except RecursionError:
        raise SpecError("the spec is nested too deeply (blocks, lists or expressions)",
                        _span(lines, filename, 1, 1)) from None


def load_spec(path_or_text: Union[str, Path]) -> Spec:
    """A spec from a file or from spec text itself.

    A :class:`~pathlib.Path` is always a file. A string is a file when it looks like a path
    (:func:`looks_like_spec_path`: one line that names an existing file, ends in ``.kc``, names
    ``FILE`` with ``FILE.kc`` existing, or holds a ``/`` and none of the spec language's
    punctuation); any other string is spec text. ``FILE`` without its ``.kc`` reads
    ``FILE.kc`` when only that exists.
    """
    text, filename = read_spec_text(path_or_text)
    return parse_spec(text, filename)


def read_spec_text(path_or_text: Union[str, Path]) -> "tuple[str, str]":
    """``(text, filename)`` of a spec file or of spec text (``"<spec>"``), by the rule of
    :func:`load_spec`, without parsing it."""
    if isinstance(path_or_text, os.PathLike) and not isinstance(path_or_text, Path):
        path_or_text = Path(path_or_text)
    if not isinstance(path_or_text, (str, Path)):  # str(42) parsed as a spec: 'unexpected 42'
        raise SpecError(f"a spec must be spec text, the path of a .kc file or a parsed Spec, "
                        f"got {type(path_or_text).__name__}")
    if isinstance(path_or_text, Path) or (isinstance(path_or_text, str)
                                          and looks_like_spec_path(path_or_text)):
        path = _spec_file(Path(path_or_text))
        try:
            # utf-8-sig: a byte-order mark (Windows editors write one) was 'unexpected
            # character' at 1:1
            return path.read_text(encoding="utf-8-sig"), str(path)
        except (OSError, ValueError) as exc:  # unreadable, not UTF-8...
            raise SpecError(f"cannot read spec file {path}: {exc}") from None
    return str(path_or_text), "<spec>"


def _is_file(path: Path, folder: bool = False) -> bool:
    """``path.is_file()`` (or ``is_dir()``), False for names the OS refuses."""
    try:
        return path.is_dir() if folder else path.is_file()
    except (OSError, ValueError):  # a name too long for the OS, a NUL byte
        return False


def looks_like_spec_path(text: str) -> bool:
    """Whether a string handed to :func:`load_spec` means a file rather than spec text: one
    line that names an existing file or folder, ends in ``.kc``, is ``FILE`` with ``FILE.kc``
    existing, or contains a path separator and no character of the spec language's punctuation
    (``; ( ) { } [ ] =`` or a ``//`` comment) — a one-line spec always has one of those, since
    ``let`` needs ``=`` and an expression with ``/`` sits in a ``let`` or an argument list."""
    if "\n" in text or not text.strip():
        return False
    if text.strip().endswith(".kc") or _is_file(Path(text)) or _is_file(Path(text + ".kc")) \
            or _is_file(Path(text), folder=True):
        return True
    separators = "/" in text or (os.sep != "/" and os.sep in text)
    return separators and "//" not in text and not any(c in text for c in ";(){}[]=")


def _spec_file(path: Path) -> Path:
    """``path``, or ``path.kc`` when only that exists; :class:`SpecError` "no such spec file"
    (with the nearest ``.kc`` files of its folder) when neither is a file."""
    if _is_file(path):
        return path
    with_suffix = Path(str(path) + ".kc")
    if path.suffix != ".kc" and _is_file(with_suffix):
        return with_suffix
    try:
        folder_exists = path.parent.is_dir()
        is_folder = path.is_dir()
        nearby = sorted(str(p) for p in path.parent.glob("*.kc")) if folder_exists else []
    except (OSError, ValueError) as exc:  # a name too long for the OS, a NUL byte
        raise SpecError(f"cannot read spec file {path}: {exc}") from None
    if is_folder:
        inside = sorted(str(p) for p in path.glob("*.kc"))[:20]
        raise SpecError(f"no such spec file: {path} is a folder",
                        suggestion=f"spec files in it: {', '.join(inside)}" if inside else None)
    try:
        if path.is_symlink() and not path.exists():
            raise SpecError(f"no such spec file: {path} is a link to {os.readlink(path)}, "
                            "which does not exist")
        if path.exists():  # /dev/null, a pipe: not "no such file", and no suggestion of itself
            raise SpecError(f"cannot read spec file {path}: not a regular file")
    except OSError:
        pass
    wanted = str(path) if path.suffix == ".kc" else str(with_suffix)
    hint = did_you_mean(wanted, [p for p in nearby if p != str(path)])
    if hint is None and not folder_exists:
        hint = f"the folder {path.parent} does not exist"
    raise SpecError(f"no such spec file: {path}", suggestion=hint)


def with_constants(text: str, constants: Mapping[str, Any], filename: str = "<spec>") -> str:
    """``text`` with the value of each named ``let NAME = ...`` replaced by the given number.

    The spec stays the one source of truth and a hyperparameter search sets its constants, e.g.
    ``with_constants("... let ws = 1.4 ... conv(3, W_std=ws) ...", {"ws": 2.0})``. Only the
    value's characters change (located by the parse tree), so comments and layout are kept and an
    override that equals the text's value can be told apart only by its spelling. A name without
    a ``let`` in the spec, or a value that is not a finite real number, is a :class:`SpecError`.
    """
    if not constants:
        return text
    lines = text.split("\n")
    try:
        tree = _lark().parse(text)
    except lark.exceptions.UnexpectedInput as exc:
        raise _syntax_error(exc, text, lines, filename) from None
    defined = {str(node.children[0]): node.children[1] for node in tree.children
               if isinstance(node, lark.Tree) and node.data == "constant"}
    edits = []
    for name, value in constants.items():
        if name not in defined:
            raise SpecError(f"constant '{name}' is not defined by a 'let' in the spec",
                            expected=defined, suggestion=did_you_mean(str(name), defined)
                            or f"add 'let {name} = ...' to the spec and use it")
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer,
                                                            np.floating)) \
                or not math.isfinite(value):
            raise SpecError(f"constant '{name}' must be a finite real number, got {value!r}")
        literal = str(int(value)) if isinstance(value, (int, np.integer)) else repr(float(value))
        node = defined[name]
        edits.append((node.meta.start_pos, node.meta.end_pos, literal))
    for start, end, literal in sorted(edits, reverse=True):
        text = text[:start] + literal + text[end:]
    return text


def with_feature_input(text: str, n_features: int, filename: str = "<spec>") -> str:
    """``text`` with ``input 1 x ... x 1 channels n_features;`` (one site of the group's lattice
    Z^d) put before its first layer when it declares no input: a spec written for feature
    vectors of any length (``flatten; dense(...)``, or ``conv(1)`` layers) takes its width from
    the data. A spec that declares an input is returned unchanged; a group outside the lattice
    family (SO3) needs its input declared. The line ends in ``;`` so that line numbers of errors
    stay those of ``text``."""
    if isinstance(n_features, bool) or not isinstance(n_features, (int, np.integer)) \
            or n_features < 1:
        raise SpecError(f"the number of input features must be a positive integer, got "
                        f"{n_features!r}")
    lines = text.split("\n")
    try:
        tree = _lark().parse(text)
    except lark.exceptions.UnexpectedInput as exc:
        raise _syntax_error(exc, text, lines, filename) from None
    headers = {"network", "group_builtin", "group_defined", "group_trivial", "input_box",
               "input_sphere", "parameterization", "constant"}
    nodes = [c for c in tree.children if isinstance(c, lark.Tree)]
    if any(n.data in ("input_box", "input_sphere") for n in nodes):
        return text
    group = next((n for n in nodes if n.data.startswith("group")), None)
    if group is None:
        return text  # parse_spec reports the missing group
    if group.data == "group_trivial":
        dim = int(str(group.children[1]))
    elif group.data == "group_defined":
        first = next(c for c in group.children if isinstance(c, lark.Tree))
        dim = len(first.children[0].children)  # entries of the first row
    else:
        name = "".join(map(str, group.children))  # C8, or C(8) -> C8
        found = get_group(name, _span(lines, filename, group.meta.line, group.meta.column))
        family = family_of(found)
        if family.input_domain != "box":  # feature vectors fill a box of 1 x ... x 1 sites
            raise SpecError(f"a spec without an 'input' line takes feature vectors, which need "
                            f"a group acting on a box of sites; group {name} ({family.name} "
                            f"family) takes a {family.input_domain} input: declare it with an "
                            "'input' line (docs/dsl.md)",
                            _span(lines, filename, group.meta.line, group.meta.column))
        dim = found.dim
    line = f"input {' x '.join(['1'] * dim)} channels {int(n_features)}; "
    body = [n for n in nodes if n.data not in headers]
    at = body[0].meta.start_pos if body else len(text)
    return text[:at] + line + text[at:]


def _span(lines, filename, line, column, length=1) -> SourceSpan:
    src = lines[line - 1] if 0 < line <= len(lines) else ""
    return SourceSpan(line, column, max(1, length), filename, src)


def _syntax_error(exc, text, lines, filename) -> SpecSyntaxError:
    line = getattr(exc, "line", -1) or -1
    column = getattr(exc, "column", -1) or -1
    if line < 1:  # unexpected end of input
        line = max(1, len(lines))
        column = len(lines[-1]) + 1 if lines else 1
    expected = set()
    for name in sorted(getattr(exc, "expected", None) or getattr(exc, "allowed", None) or ()):
        expected.add(_TOKEN_NAMES.get(name, _pretty_terminal(name)))
    hint = None
    if isinstance(exc, lark.exceptions.UnexpectedToken):
        token = exc.token
        what = "end of file" if token.type == "$END" else f"'{token}'"
        length = len(str(token)) if token.type != "$END" else 1
        message = f"unexpected {what}"
        if token.type == "$END":  # point just past the last non-blank character
            line = max((i + 1 for i, ln in enumerate(lines) if ln.strip()), default=1)
            column = len(lines[line - 1].rstrip()) + 1 if lines else 1
        keywords = [e.strip("'") for e in expected if e.startswith("'") and e[1:-1].isalpha()]
        hint = did_you_mean(str(token), keywords) if token.type != "$END" else None
    elif isinstance(exc, lark.exceptions.UnexpectedCharacters):
        char = text[exc.pos_in_stream] if exc.pos_in_stream < len(text) else "?"
        message, length = f"unexpected character '{char}'", 1
    else:
        message, length = "unexpected end of file", 1
    if "'}'" in expected and "end of file" in message:
        hint = "a '{' block is not closed"
    return SpecSyntaxError(message, _span(lines, filename, line, column, length),
                           expected=expected, suggestion=hint)


def _power_too_large(a: sympy.Expr, b: sympy.Expr) -> bool:
    """Whether a**b of two numbers exceeds 2**MAX_POWER_BITS (estimated, never computed)."""
    if a.free_symbols or b.free_symbols:
        return False
    try:
        base, exponent = abs(sympy.N(a, 15)), abs(sympy.N(b, 15))
        if base == 0 or exponent == 0:
            return False
        return bool(exponent * abs(sympy.log(base, 2)) > MAX_POWER_BITS)
    except (TypeError, ValueError):  # zoo, nan: left to the finiteness checks
        return False


def _pretty_terminal(name: str) -> str:
    # lark names anonymous keyword terminals after their text (e.g. 'CHANNELS' -> "channels").
    return f"'{name.lower()}'" if name.isupper() and name.isalpha() else name


class _Builder:
    """Walks the lark tree into AST nodes, resolving constants and folding expressions."""

    def __init__(self, lines, filename):
        self.lines, self.filename = lines, filename
        self.constants: Dict[str, sympy.Expr] = {}

    def span_of(self, node) -> SourceSpan:
        if isinstance(node, lark.Token):
            return _span(self.lines, self.filename, node.line, node.column, len(str(node)))
        meta = node.meta
        if getattr(meta, "empty", True):
            return _span(self.lines, self.filename, 1, 1)
        length = meta.end_column - meta.column if meta.end_line == meta.line else \
            len(self.lines[meta.line - 1]) - meta.column + 1
        return _span(self.lines, self.filename, meta.line, meta.column, length)

    # -- header ------------------------------------------------------------------
    def spec(self, tree: lark.Tree, text: str) -> Spec:
        name, group, inp, param = None, None, None, None
        body = []
        seen: Dict[str, SourceSpan] = {}
        for child in tree.children:
            kind = child.data
            if kind in ("network", "group_builtin", "group_defined", "group_trivial",
                        "input_box", "input_sphere", "parameterization"):
                key = "group" if kind.startswith("group") else \
                    "input" if kind.startswith("input") else kind
                if key in seen:
                    raise SpecError(f"'{key}' is declared twice (first at line {seen[key].line})",
                                    self.span_of(child))
                seen[key] = self.span_of(child)
            if kind == "network":
                name = str(child.children[0])
            elif kind.startswith("group"):
                group = self.group(child)
            elif kind == "input_box":
                inp = self.input_box(child)
            elif kind == "input_sphere":
                inp = self.input_sphere(child)
            elif kind == "parameterization":
                param = self.parameterization(child)
            elif kind == "constant":
                cname, value = child.children
                if str(cname) == "x":
                    raise SpecError("'x' cannot be a constant: it is the variable of phi(...), "
                                    "and a constant x would silently turn phi(x*x) into a number",
                                    self.span_of(cname), suggestion="choose another name")
                if str(cname) in self.constants or str(cname) in CONSTANTS:
                    raise SpecError(f"constant '{cname}' is defined twice", self.span_of(cname))
                folded = self.value(value)
                if not isinstance(folded, (int, float)):
                    raise SpecError(f"constant '{cname}' must be a number", self.span_of(value))
                self.constants[str(cname)] = sympy.nsimplify(folded) if isinstance(folded, int) \
                    else sympy.Float(folded, 17)
            else:
                body.append(self.statement(child))
        end = _span(self.lines, self.filename, 1, 1)
        if group is None:
            raise SpecError("the spec declares no group (add e.g. 'group p4' or 'group Z2')", end,
                            suggestion="every spec starts with: network NAME / group G / input H x W channels C")
        if inp is None:
            raise SpecError("the spec declares no input (add e.g. 'input 32 x 32 channels 3')", end)
        if not body:
            raise SpecError("the spec has no layers", end)
        return Spec(name=name or Path(self.filename).stem.replace("<spec>", "network"),
                    group=group, input=inp, parameterization=param or "ntk",
                    constants=tuple((k, float(v)) for k, v in self.constants.items()),
                    body=tuple(body), source=text, filename=self.filename,
                    span=self.span_of(tree))

    def group(self, node) -> GroupDecl:
        span = self.span_of(node)
        if node.data == "group_builtin":  # "group C8", or "group C(8)" (the same group)
            return GroupDecl("".join(map(str, node.children)), None, "square", span)
        if node.data == "group_trivial":
            dim = int(node.children[1])
            if not 1 <= dim <= 4:
                raise SpecError(f"a trivial group needs dimension 1..4, got {dim}", span)
            return GroupDecl(str(node.children[0]), (), "square", span, dim)
        name, *rest = node.children
        lattice = "square"
        if rest and isinstance(rest[0], lark.Token) and rest[0].type == "LATTICE":
            lattice = str(rest[0])
            rest = rest[1:]
        gens = []
        for matrix in rest:
            rows = tuple(tuple(self.matrix_entry(name, c.children[0]) for c in row.children)
                         for row in matrix.children)
            gens.append(rows)
        return GroupDecl(str(name), tuple(gens), lattice, span, len(gens[0]))

    def matrix_entry(self, name, token) -> int:
        text = str(token)
        if token.type != "SIGNED_INT":
            raise GroupError(f"group '{name}': generator entries must be integers, got {text}; "
                             "point-group matrices act on Z^d", self.span_of(token))
        return int(text)

    def input_box(self, node) -> InputDecl:
        *dims, channels = [int(str(t)) for t in node.children]
        span = self.span_of(node)
        if any(d < 1 for d in dims) or channels < 1:
            raise SpecError("input sizes and channels must be positive", span)
        if len(dims) > 4:
            raise SpecError(f"inputs of {len(dims)} spatial axes are not supported (1..4)", span)
        if math.prod(dims) > MAX_SITES:
            raise SpecError(f"the input box has {math.prod(dims)} sites; at most {MAX_SITES} are "
                            "supported", span)
        return InputDecl(tuple(dims), channels, span)

    def input_sphere(self, node) -> InputDecl:
        band, channels = [int(str(t)) for t in node.children]
        span = self.span_of(node)
        if band < 1 or channels < 1:
            raise SpecError("the band limit and channels of a sphere input must be positive", span)
        if band > MAX_BANDWIDTH:
            raise SpecError(f"band limit {band} is above the supported {MAX_BANDWIDTH}", span)
        return InputDecl((2 * band, 2 * band), channels, span, "sphere", band)

    def parameterization(self, node) -> str:
        word = str(node.children[0])
        if word not in ("ntk", "standard"):
            raise SpecError(f"unknown parameterization '{word}'", self.span_of(node.children[0]),
                            expected=["ntk", "standard"],
                            suggestion=did_you_mean(word, ["ntk", "standard"]))
        return word

    # -- statements --------------------------------------------------------------
    def statement(self, node):
        span = self.span_of(node)
        kind = node.data
        if kind == "layer":
            name, *args = [c for c in node.children if c is not None]
            return Layer(str(name), tuple(self.argument(a) for a in args), span)
        if kind == "repeat":
            count, *body = node.children
            if int(str(count)) < 1:
                raise SpecError("repeat needs a count of at least 1", self.span_of(count))
            return Repeat(int(str(count)), tuple(self.statement(c) for c in body), span)
        if kind == "residual_body":
            return Branches("sum", (tuple(self.statement(c) for c in node.children), ()), span)
        if kind in ("residual_branches", "concat"):
            branches = tuple(tuple(self.statement(c) for c in b.children) for b in node.children)
            if kind == "concat" and len(branches) < 2:
                raise SpecError("concat needs at least two branches", span)
            return Branches("sum" if kind.startswith("residual") else "concat", branches, span)
        raise SpecError(f"unexpected statement '{kind}'", span)  # pragma: no cover

    def argument(self, node) -> Argument:
        span = self.span_of(node)
        if node.data == "named_argument":
            key, value = node.children
            return Argument(str(key), self.value(value, allow_x=False), span)
        (value,) = node.children
        return Argument(None, self.value(value, allow_x=True), span)

    # -- values ------------------------------------------------------------------
    def value(self, node, allow_x: bool = False):
        if isinstance(node, lark.Tree) and node.data in ("list", "tuple"):
            return tuple(self.value(c, allow_x) for c in node.children if c is not None)
        if isinstance(node, lark.Tree) and node.data == "name":
            word = str(node.children[0])
            if word not in self.constants and word not in CONSTANTS and word != "x":
                return Word(word)
        expr = self.expr(node, allow_x)
        if expr.free_symbols:
            if expr.has(sympy.zoo, sympy.oo, -sympy.oo, sympy.nan, sympy.I):
                raise SpecError("the expression contains an infinite, undefined or complex "
                                "number", self.span_of(node))
            return expr
        if expr.is_Integer:
            return int(expr)
        try:
            number = complex(expr.evalf())
        except (TypeError, ValueError, OverflowError, RecursionError):  # sympy's evalf limits
            raise SpecError("expression does not evaluate to a number", self.span_of(node)) from None
        if abs(number.imag) > 0 or number.real != number.real or abs(number.real) == float("inf"):
            raise SpecError("expression does not evaluate to a finite real number",
                            self.span_of(node))
        return float(number.real)

    def expr(self, node, allow_x: bool) -> sympy.Expr:
        kind = node.data
        ch = node.children
        if kind == "number":
            text = str(ch[0])
            # float(text) first: the literal is the nearest double, as in Python (Float(text, 17)
            # rounded twice and gave e.g. 550841.5774251081 for 550841.577425108)
            value = float(text)
            if value == float("inf"):
                raise SpecError(f"the number {text[:20]}{'…' if len(text) > 20 else ''} is "
                                "beyond the range of a double (about 1.8e308)",
                                self.span_of(ch[0]))
            # int(text) of more than 4300 digits raises in Python; such a literal is a float
            return sympy.Integer(int(text)) if text.isdigit() and len(text) <= 4000 \
                else sympy.Float(value, 17)
        if kind == "name":
            word = str(ch[0])
            if word in self.constants:
                return self.constants[word]
            if word in CONSTANTS:
                return CONSTANTS[word]
            if word == "x" and allow_x:
                return X
            known = list(self.constants) + list(CONSTANTS) + (["x"] if allow_x else [])
            raise SpecError(f"unknown name '{word}' in an expression", self.span_of(ch[0]),
                            suggestion=did_you_mean(word, known)
                            or ("'x' is only allowed inside phi(...)" if word == "x" else None))
        if kind == "call":
            fname, *args = ch
            args = [a for a in args if a is not None]
            fn = FUNCTIONS.get(str(fname))
            if fn is None:
                raise SpecError(f"unknown function '{fname}'", self.span_of(fname),
                                expected=FUNCTIONS, suggestion=did_you_mean(str(fname), FUNCTIONS))
            values = [self.expr(a, allow_x) for a in args]
            try:
                return fn(*values)
            except TypeError:
                raise SpecError(f"wrong number of arguments to '{fname}'", self.span_of(node)) from None
            except ValueError as exc:  # e.g. max(1, sqrt(-1)): "not comparable"
                raise SpecError(f"invalid arguments to '{fname}': {exc}", self.span_of(node)) from None
        binary = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b,
                  "mul": lambda a, b: a * b, "div": lambda a, b: a / b,
                  "pow": lambda a, b: a ** b}
        if kind in binary:
            a, b = (self.expr(c, allow_x) for c in ch)
            if kind == "div" and b == 0:
                raise SpecError("division by zero", self.span_of(node))
            if kind == "pow" and _power_too_large(a, b):
                raise SpecError(f"the number is too large (more than {MAX_POWER_BITS} bits)",
                                self.span_of(node))
            return binary[kind](a, b)
        if kind == "neg":
            return -self.expr(ch[0], allow_x)
        if kind in ("unary", "power", "atom", "expr", "sum", "product"):  # pragma: no cover
            return self.expr(ch[-1], allow_x)
        raise SpecError(f"expected a number or an expression, found a {kind}", self.span_of(node))
