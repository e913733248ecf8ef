"""kernelc in a notebook: a one-line repr, Markdown and LaTeX displays, progress that shows in
Jupyter (tqdm.auto when installed), plots that leave matplotlib's backend alone."""
import sys

import numpy as np
import pytest

import kernelc
from kernelc.runtime import driver

SPEC = "network tiny\ngroup p4\ninput 3 x 3 channels 1\nlift(size=3)\nrelu\ngroup_pool\ndense(1)\n"


@pytest.fixture(scope="module")
def net():
    return kernelc.compile(SPEC)


def test_repr_is_one_short_line(net):
    assert repr(net) == ("<CompiledKernel tiny: group p4, input 3×3×1, 4 layers, "
                         "output vector[1], NNGP+NTK>")


class _Stream:
    """Stands in for a stream that is not a terminal."""

    def __init__(self):
        self.text = []

    def write(self, text):
        self.text.append(text)

    def flush(self):
        pass

    def isatty(self):
        return False


def test_progress_uses_tqdm_when_installed(net, monkeypatch):
    tqdm_auto = pytest.importorskip("tqdm.auto")
    made = []

    class Recording(tqdm_auto.tqdm):
        def __init__(self, *args, **kwargs):
            made.append(kwargs)
            kwargs["file"] = _Stream()
            super().__init__(*args, **kwargs)
    monkeypatch.setattr(tqdm_auto, "tqdm", Recording)
    x = np.random.default_rng(0).normal(size=(3, 3, 3, 1))
    net.kernel_fn(x, get="nngp", progress=True, check_precision=False)
    assert [m["desc"] for m in made] == ["kernelc: diagonal", "kernelc: Gram tiles"]


def test_progress_falls_back_to_the_text_bar_without_tqdm(net, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    x = np.random.default_rng(0).normal(size=(3, 3, 3, 1))
    net.kernel_fn(x, get="nngp", progress=True, check_precision=False)
    err = capsys.readouterr().err
    assert "kernelc: Gram tiles [" in err and "1/1" in err


def test_progress_shows_by_default_in_a_jupyter_kernel(monkeypatch):
    """ipykernel's stream is not a terminal: the default used to be silent there."""
    pytest.importorskip("tqdm.auto")
    stream = type("OutStream", (_Stream,), {"__module__": "ipykernel.iostream"})()
    monkeypatch.setattr(sys, "stderr", stream)
    assert driver.in_notebook()
    bar = driver.Progress(3, "kernelc: Gram tiles")
    assert bar.enabled and bar.bar is not None and bar.bar.delay == 2.0
    bar.bar.close()
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    assert not driver.Progress(3, "kernelc: Gram tiles").enabled  # no text bar in a notebook


def test_plot_curves_leaves_the_backend_alone(tmp_path):
    matplotlib = pytest.importorskip("matplotlib")
    from kernelc.methods.tasks import plot_curves
    before = matplotlib.get_backend()
    matplotlib.use("svg")  # a notebook's backend, say
    try:
        records = [{"spec": "tiny", "test_set": "test", "kernel": "ntk", "t": None, "size": s,
                    "accuracy": a} for s, a in ((2, 0.5), (4, 0.75))]
        out = plot_curves(records, tmp_path / "curve", "classification")
        assert out.exists() and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert matplotlib.get_backend() == "svg"
    finally:
        matplotlib.use(before)


# -- Markdown and LaTeX: parsed by real parsers --------------------------------------------------
#: relu and (R) (K̃⁺[t,t'](q) in the plan), erf, a custom group with leaky_relu and a quadrature
#: map, SO(3) (integrals, Wigner coefficients, Π_L), the standard parameterization (n_in, [b])
FORMULA_SPECS = {
    "p4_histology": "specs/p4_histology.kc",
    "c2v_custom": "specs/c2v_custom.kc",
    "so3_qm9": "specs/so3_qm9.kc",
    "standard": "network standard\nparameterization standard\ngroup p4\ninput 4 x 4 channels 1\n"
                "lift(size=3, width=8)\nrelu\ngroup_pool\ndense(1)\n",
}


@pytest.fixture(scope="module", params=sorted(FORMULA_SPECS))
def compiled(request):
    return kernelc.compile(FORMULA_SPECS[request.param])


def _compiles_in_mathtext(tex: str):
    """matplotlib's mathtext parser raises ValueError on unknown commands, unbalanced braces
    and double super/subscripts; LaTeX for a document must also be plain ASCII."""
    from matplotlib.mathtext import MathTextParser
    assert tex.isascii(), tex
    MathTextParser("path").parse(f"${tex}$")


def _markdown_tokens(text, math=True):
    from markdown_it import MarkdownIt
    md = MarkdownIt("commonmark")
    if math:
        from mdit_py_plugins.dollarmath import dollarmath_plugin
        md = md.use(dollarmath_plugin, double_inline=True)
    return md.parse(text)


def _rendered(inline):
    """The text an inline token renders to (escapes resolved, math as its source)."""
    return "".join(c.content for c in inline.children if c.type in ("text", "math_inline"))


def _walk(tokens):
    for token in tokens:
        yield token
        yield from _walk(token.children or [])


def test_explain_markdown_structure_links_and_math(compiled):
    pytest.importorskip("markdown_it")
    pytest.importorskip("mdit_py_plugins")
    pytest.importorskip("matplotlib")
    text = compiled.explain(n=10, style="markdown")
    # with a math extension (as Jupyter and GitHub read it) no formula or prose becomes markup
    tokens = list(_walk(_markdown_tokens(text)))
    assert not [t for t in tokens if t.type in ("link_open", "html_inline", "em_open",
                                               "strong_open")], "markup from formulas"
    # a renderer without math may set subscripts in italics, but never makes links
    plain = list(_walk(_markdown_tokens(text, math=False)))
    assert not [t for t in plain if t.type in ("link_open", "html_inline")]
    # the structure: one h1, h2 sections, one h3 per layer, formulas as math in list items
    block = _markdown_tokens(text)
    headings = [(t.tag, _rendered(block[i + 1])) for i, t in enumerate(block)
                if t.type == "heading_open"]
    assert headings[0] == ("h1", f"kernelc explain: {compiled.spec.name}")
    assert [c for tag, c in headings if tag == "h2"][:1] == ["Identities"]
    assert "Layers" in [c for tag, c in headings if tag == "h2"]
    layers = [c.split(" (")[0] for tag, c in headings if tag == "h3"]
    assert layers == [nd.name for nd in compiled.derivation.nodes]
    maths = [t.content for t in tokens if t.type == "math_inline"]
    assert len(maths) >= 2 * len(compiled.formulas())
    for tex in maths:
        _compiles_in_mathtext(tex)
    # every plan line is a formula, not text
    plan_items = [t for t in tokens if t.type == "inline" and _rendered(t).startswith("plan: ")]
    assert plan_items and all(any(c.type == "math_inline" for c in t.children)
                              for t in plan_items)
    # prose reads as written once rendered: the identities list (K̃[t,t'](q), i < j) and notes
    rendered = [_rendered(t) for t in tokens if t.type == "inline"]
    for dec in compiled.derivation.decisions.values():
        assert dec.line() in rendered


def test_explain_latex_formulas_compile(compiled):
    pytest.importorskip("matplotlib")
    text = compiled.explain(style="latex")
    formula_lines = [line.strip().split(": ", 1)[1] for line in text.splitlines()
                     if line.strip().startswith(("NNGP: ", "NTK:  ", "used: ", "plan: "))]
    formula_lines += [line.strip()[len("with "):] for line in text.splitlines()
                      if line.strip().startswith("with ")]
    assert formula_lines
    for line in formula_lines:
        tex = line.split("   (")[0]  # a trailing annotation in words, e.g. (R), is text
        _compiles_in_mathtext(tex)


def test_repr_latex_and_markdown_of_a_network_and_its_formulas(compiled):
    pytest.importorskip("matplotlib")
    pytest.importorskip("markdown_it")
    equations = compiled._repr_latex_().splitlines()
    assert equations and all(e.startswith("$$") and e.endswith("$$") for e in equations)
    for e in equations:
        _compiles_in_mathtext(e[2:-2])
    assert compiled._repr_markdown_() == compiled.explain(style="markdown")
    table = compiled.formulas()
    assert table._repr_latex_() == compiled._repr_latex_()
    tokens = list(_walk(_markdown_tokens(table._repr_markdown_())))
    assert [t.content for t in tokens if t.type == "math_inline"]
    assert not [t for t in tokens if t.type == "link_open"]


# -- the formula output bugs of issue 12 item 5, each fixed ----------------------------------------
@pytest.fixture(scope="module")
def histology():
    return kernelc.compile("specs/p4_histology.kc")


def test_markdown_plan_line_is_math_not_a_link(histology):
    text = histology.explain(style="markdown")
    assert (r"- plan: $\tilde{K}^{+}[t,t']{}(q) = \sigma_{w}^{2}/|S| \sum_{y \in S} "
            r"K_{0}[t+y, t'+\rho(q)y] + \sigma_{b}^{2}$ (R)") in text
    assert r"store K̃\[t,t'\](q)" in text  # prose: brackets escaped


def test_latex_sigma_squared_and_braces(histology):
    text = histology.explain(style="latex")
    assert r"\sigma_{b}^{2}" in text and r"\sigma_{w}^{2}" in text
    assert "σ_{b²}" not in text and "σ_{w²}" not in text
    assert r"{|S_{G}|}" in text and "|S_{G|}" not in text


def test_latex_formulas_have_no_raw_unicode(histology):
    for name, entry in histology.formulas("latex").items():
        for tex in [entry["nngp"], entry["ntk"]] + entry["reduced"]:
            assert tex is None or tex.isascii(), (name, tex)
    text = histology.explain(style="latex")
    assert r"\tilde{K}^{+}" in text and r"\Theta^{+}" in text and r"\odot" in text
    assert r"\rho(q)" in text and r"\sum_{y \in S}" in text


def test_plan_and_with_lines_are_latex(histology):
    text = histology.explain(style="latex")
    assert (r"plan: K^{+} = \mathbb{E}[\varphi(u)\varphi(v)],\quad \Theta^{+} = \dot{K} "
            r"\odot \Theta,\quad \varphi = \mathrm{relu}") in text
    assert r"with \sigma_{w}^{2} = 2,\quad \sigma_{b}^{2} = 0.0025,\quad |S| = 9" in text
    md = histology.explain(style="markdown")
    assert r"- with $\sigma_{w}^{2} = 2,\quad \sigma_{b}^{2} = 0.0025,\quad |S| = 9$" in md


def test_lambda_is_defined_where_first_used(histology):
    for style, definition in (
            ("unicode", "where Λ = [[k11, k12], [k12, k22]] is the covariance of the Gaussian "
                        "pre-activations (u, v)"),
            ("latex", r"where \Lambda = \left(\genfrac{}{}{0}{}{k_{11}\;\;k_{12}}"
                      r"{k_{12}\;\;k_{22}}\right)"),
            ("markdown", r"- where $\Lambda = \left(\genfrac{}{}{0}{}{k_{11}\;\;k_{12}}"
                         r"{k_{12}\;\;k_{22}}\right)$ is the covariance")):
        lines = histology.explain(style=style).splitlines()
        first_use = next(i for i, line in enumerate(lines) if "Λ" in line or r"\Lambda" in line)
        assert definition in lines[first_use + 1], (style, lines[first_use + 1])
        assert sum(definition in line for line in lines) == 1  # said once


def test_unknown_style_is_refused(histology):
    from kernelc.errors import ExplainError
    with pytest.raises(ExplainError, match="style must be 'unicode', 'latex' or 'markdown'"):
        histology.explain(style="html")


def test_latex_of_text_translates_the_notation():
    from kernelc.ir.latex import latex_of_text, split_annotation
    assert latex_of_text("σ_w²") == r"\sigma_{w}^{2}"
    assert latex_of_text("K̃⁺[t,t'](q)") == r"\tilde{K}^{+}[t,t']{}(q)"
    assert latex_of_text("δ_ℓ0") == r"\delta_{\ell0}" and latex_of_text("Y_ℓm") == r"Y_{\ell m}"
    assert latex_of_text("K̂⁺^ℓ_mn") == r"\hat{K}^{+\ell}_{mn}"  # one superscript, not two
    assert latex_of_text("K0") == "K_{0}" and latex_of_text("Θ0") == r"\Theta_{0}"
    assert latex_of_text("leaky_relu(0.2)") == r"\mathrm{leaky\_relu}(0.2)"
    assert latex_of_text("g·y") == r"g \cdot y" and latex_of_text("SO(3)") == r"\mathrm{SO}(3)"
    assert split_annotation("K⁺ = ∫ K̃(q) dq  (R: grid quadrature)") == \
        ("K⁺ = ∫ K̃(q) dq", "(R: grid quadrature)")
    assert split_annotation("K⁺ = mean_g K[g,g]") == ("K⁺ = mean_g K[g,g]", "")
    with pytest.raises(ValueError, match="no LaTeX for '☃'"):
        latex_of_text("☃")


def test_repr_of_a_sphere_network():
    net = kernelc.compile("specs/so3_qm9.kc")
    assert repr(net) == ("<CompiledKernel so3_qm9: group SO3, input S² band 4 (grid 8×8)×10, "
                         "6 layers, output vector[1], NNGP+NTK>")
