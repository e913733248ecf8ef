"""The CLI never prints a traceback, and writes its output files safely: checked before any work,
written atomically, under the name really written."""
import os
import stat

import numpy as np
import pytest

from kernelc import cli
from kernelc.cli import main
from kernelc.errors import InputError, OutputError
from kernelc.methods.data import output_path, save_figure, save_npz, write_atomic, write_text

TINY = """network tiny
group Z2
input 3 x 3 channels 1
conv(size=3, W_std=1.4, b_std=0.1, padding=same)
relu
avg_pool
flatten
dense(2)
"""


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def files(tmp_path, monkeypatch):
    """A tiny spec and a data file in a scratch working directory."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.kc").write_text(TINY)
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "k.npz", x=rng.normal(size=(2, 3, 3, 1)))
    np.savez(tmp_path / "d.npz", x_train=rng.normal(size=(4, 3, 3, 1)), y_train=np.array([0, 1, 0, 1]),
             x_test=rng.normal(size=(2, 3, 3, 1)), y_test=np.array([0, 1]))
    return tmp_path


# -- the last-resort handler ---------------------------------------------------------------
def _replace_command(monkeypatch, name, exc):
    def boom(args):
        raise exc
    monkeypatch.setitem(cli.COMMANDS, name, (cli.COMMANDS[name][0], boom))


def test_internal_error_is_one_line_with_a_bug_hint(monkeypatch, capsys):
    monkeypatch.delenv("KERNELC_TRACEBACK", raising=False)
    _replace_command(monkeypatch, "check", RuntimeError("boom\nsecond line"))
    code, out, err = run(capsys, "check", "it's.kc")
    assert code == 3 and out == ""
    assert "Traceback" not in err
    lines = err.splitlines()
    assert lines[0] == "kernelc: internal error: RuntimeError: boom second line"
    assert lines[1].startswith("this is a bug in kernelc; please report it with the command "
                               "(kernelc check 'it'\"'\"'s.kc') and its input files")
    assert "KERNELC_TRACEBACK=1" in lines[1] and len(lines) == 2


def test_internal_error_traceback_on_request(monkeypatch, capsys):
    monkeypatch.setenv("KERNELC_TRACEBACK", "1")
    _replace_command(monkeypatch, "groups", ZeroDivisionError("division by zero"))
    code, _, err = run(capsys, "groups")
    assert code == 3
    assert "Traceback (most recent call last)" in err
    assert "kernelc: internal error: ZeroDivisionError: division by zero" in err


def test_internal_error_without_message(monkeypatch, capsys):
    _replace_command(monkeypatch, "groups", KeyError())
    code, _, err = run(capsys, "groups")
    assert code == 3 and "kernelc: internal error: KeyError: (no message)" in err


def test_keyboard_interrupt_exits_130_quietly(monkeypatch, capsys):
    _replace_command(monkeypatch, "groups", KeyboardInterrupt())
    code, out, err = run(capsys, "groups")
    assert (code, out, err) == (130, "", "")


def test_broken_pipe_exits_0(monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(cli.os, "dup2", lambda a, b: calls.append(b))
    _replace_command(monkeypatch, "groups", BrokenPipeError())
    code, out, err = run(capsys, "groups")
    assert (code, err) == (0, "")


def test_kernelc_error_keeps_status_2_and_escapes_control_characters(monkeypatch, capsys):
    _replace_command(monkeypatch, "groups", InputError("bad \x1b[2J file\nsecond line"))
    code, _, err = run(capsys, "groups")
    assert code == 2
    assert err == "input error: bad \\x1b[2J file\nsecond line\n"


def test_errors_while_loading_the_commands_are_reported(monkeypatch, capsys):
    def broken():
        raise ImportError("no module named 'kernelc.methods.commands'")
    monkeypatch.setattr(cli, "_load_plugins", broken)
    code, _, err = run(capsys, "groups")
    assert code == 3 and "kernelc: internal error: ImportError: no module named" in err


def test_usage_errors_stay_argparse_errors(capsys):
    with pytest.raises(SystemExit) as info:
        main(["kernel", "x.kc"])
    assert info.value.code == 2
    assert "one of the arguments --data --random is required" in capsys.readouterr().err


# -- output files: checked before any work ---------------------------------------------------
def test_compile_output_is_a_folder(files, capsys):
    (files / "out").mkdir()
    code, out, err = run(capsys, "compile", "s.kc", "-o", "out")
    assert code == 2 and out == ""
    assert err == "output error: -o out is a folder; give a file name\n"


def test_compile_output_in_a_missing_folder(files, capsys):
    code, _, err = run(capsys, "compile", "s.kc", "-o", "no/such/m.py")
    assert code == 2
    assert err == ("output error: -o no/such/m.py: the folder no/such does not exist; "
                   "create it first\n")
    assert not (files / "no").exists()
    code, _, err = run(capsys, "compile", "s.kc", "-o", "newdir/")
    assert code == 2 and "-o newdir/ ends with a path separator; give a file name" in err
    code, _, err = run(capsys, "compile", "s.kc", "-o", "")
    assert code == 2 and "output error: -o: empty file name" in err


def test_compile_output_under_a_file(files, capsys):
    code, _, err = run(capsys, "compile", "s.kc", "-o", "s.kc/m.py")
    assert code == 2 and "output error: -o s.kc/m.py: s.kc is not a folder" in err


def test_compile_onto_its_own_spec_is_refused(files, capsys):
    for target in ("s.kc", "./s.kc", str(files / "s.kc")):
        code, _, err = run(capsys, "compile", "s.kc", "-o", target)
        assert code == 2
        assert f"output error: -o {target.removeprefix('./')} is the input file s.kc; writing " \
               "there would overwrite it: choose another name" in err
    os.link(files / "s.kc", files / "hard.kc")
    code, _, err = run(capsys, "compile", "s.kc", "-o", "hard.kc")
    assert code == 2 and "is the input file s.kc" in err
    assert (files / "s.kc").read_text() == TINY


def test_output_checked_before_compiling(files, capsys):
    """A bad output place is reported even when the spec would fail too: nothing is computed."""
    (files / "bad.kc").write_text("network bad\ngroup nope\n")
    code, _, err = run(capsys, "compile", "bad.kc", "-o", "no/such/m.py")
    assert code == 2 and "the folder no/such does not exist" in err


def test_output_in_a_read_only_folder(files, capsys, monkeypatch):
    (files / "ro").mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == "ro"  # (root may write
                        else real_access(p, mode))                          # anywhere)
    code, _, err = run(capsys, "compile", "s.kc", "-o", "ro/m.py")
    assert code == 2
    assert "output error: -o ro/m.py: no permission to write in the folder ro" in err


def test_compile_writes_atomically_and_replaces(files, capsys):
    (files / "m.py").write_text("old")
    code, out, _ = run(capsys, "compile", "s.kc", "-o", "m.py")
    assert code == 0 and out.startswith("wrote m.py (")
    assert (files / "m.py").read_text().startswith('"""Exact infinite-width')
    assert sorted(p.name for p in files.iterdir()) == ["d.npz", "k.npz", "m.py", "s.kc"]


def test_kernel_out_onto_its_data_is_refused(files, capsys):
    for target in ("k.npz", "k"):  # "k" would be written as k.npz
        code, out, err = run(capsys, "kernel", "s.kc", "--data", "k.npz", "--out", target)
        assert code == 2 and out == ""
        assert err == ("output error: --out k.npz is the input file k.npz; writing there would "
                       "overwrite it: choose another name\n")
    assert sorted(p.name for p in files.iterdir()) == ["d.npz", "k.npz", "s.kc"]


def test_kernel_out_reports_the_real_file_name(files, capsys):
    code, out, _ = run(capsys, "kernel", "s.kc", "--random", "2", "--out", "result")
    assert code == 0
    assert out.splitlines()[-1] == "wrote result.npz"
    assert not (files / "result").exists()
    with np.load(files / "result.npz") as z:
        assert sorted(z.files) == ["nngp", "ntk"] and z["ntk"].shape == (2, 2)


def test_predict_fit_augment_verify_check_outputs_first(files, capsys):
    cases = [
        (["predict", "s.kc", "--train", "d.npz", "--out", "d"],
         "output error: --out d.npz is the input file d.npz"),
        (["predict", "s.kc", "--train", "d.npz", "--out", "no/p.npz"],
         "output error: --out no/p.npz: the folder no does not exist"),
        (["fit", "s.kc", "--train", "d.npz", "--json", "s.kc"],
         "output error: --json s.kc is the input file s.kc"),
        (["fit", "s.kc", "--train", "d.npz", "--plot", "curves.txt"],
         "output error: --plot curves.txt: unknown image format '.txt'; use .png, .pdf or .svg"),
        (["fit", "s.kc", "--train", "d.npz", "--plot", "r", "--json", "r.png"],
         "output error: --json and --plot name the same file r.png; give two names"),
        (["verify", "s.kc", "--json", "k.npz", "--data", "k.npz"],
         "output error: --json k.npz is the input file k.npz"),
        (["verify", "s.kc", "--plot", "."],
         "output error: --plot . is a folder; give a file name"),
    ]
    for argv, message in cases:
        code, out, err = run(capsys, *argv)
        assert code == 2, (argv, err)
        assert err.startswith(message), (argv, err)
    code, _, err = run(capsys, "augment", "s.kc", "--group", "p4", "--data", "d.npz",
                       "--out", "d")
    assert code == 2 and "output error: --out d.npz is the input file d.npz" in err


def test_predict_out_reports_the_real_file_name(files, capsys):
    code, out, err = run(capsys, "predict", "s.kc", "--train", "d.npz", "--out", "pred")
    assert code == 0, err
    assert out.splitlines()[-1].startswith("wrote pred.npz (t (1,), ntk_mean (1, 2, 2)")
    assert (files / "pred.npz").is_file() and not (files / "pred").exists()


# -- the helpers -------------------------------------------------------------------------------
def test_write_atomic_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "out.npz"
    target.write_bytes(b"old")

    def half(fh):
        fh.write(b"partial")
        raise RuntimeError("disk on fire")
    with pytest.raises(RuntimeError, match="disk on fire"):
        write_atomic(target, half)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.npz"]

    def oserror(fh):
        raise OSError(28, "No space left on device")
    with pytest.raises(OutputError, match=f"cannot write {target}: No space left on device"):
        write_atomic(target, oserror)
    assert target.read_bytes() == b"old" and len(list(tmp_path.iterdir())) == 1


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_write_atomic_file_modes(tmp_path):
    mask = os.umask(0o022)
    try:
        new = write_text(tmp_path / "new.txt", "é\n")
        assert stat.S_IMODE(new.stat().st_mode) == 0o644
        assert new.read_bytes() == "é\n".encode()
        old = tmp_path / "old.txt"
        old.write_text("x")
        old.chmod(0o600)
        write_text(old, "y")
        assert stat.S_IMODE(old.stat().st_mode) == 0o600 and old.read_text() == "y"
    finally:
        os.umask(mask)


def test_save_npz_and_output_path_suffixes(tmp_path):
    assert save_npz(tmp_path / "a", {"x": np.arange(3)}) == tmp_path / "a.npz"
    assert save_npz(tmp_path / "b.npz", {"x": np.arange(3)}) == tmp_path / "b.npz"
    with np.load(tmp_path / "a.npz") as z:
        assert z["x"].tolist() == [0, 1, 2]
    assert output_path(tmp_path / "r", "--out", suffix=".npz") == tmp_path / "r.npz"
    assert output_path(tmp_path / "p", "--plot", image=True) == tmp_path / "p.png"
    assert output_path(tmp_path / "p.PDF", "--plot", image=True) == tmp_path / "p.PDF"
    made = output_path(tmp_path / "new" / "m.py", "-o", create_folder=True)
    assert made.parent.is_dir()


def test_save_figure_appends_png_and_writes_atomically(tmp_path):
    pytest.importorskip("matplotlib")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(1, 1))
    FigureCanvasAgg(fig)
    fig.add_subplot(1, 1, 1).plot([0, 1])
    path = save_figure(fig, tmp_path / "curve")
    assert path == tmp_path / "curve.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = save_figure(fig, tmp_path / "c.svg")
    assert b"<svg" in svg.read_bytes()[:400]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.svg", "curve.png"]


# -- kernel: arguments that used to be ignored or silently inconsistent -----------------------
@pytest.mark.parametrize("limit", [0, -1])
def test_kernel_limit_must_be_positive(files, capsys, limit):
    code, _, err = run(capsys, "kernel", "s.kc", "--data", "k.npz", "--limit", limit)
    assert code == 2 and f"--limit must be a positive number of inputs, got {limit}" in err


def test_kernel_refuses_uint8_mixed_with_float(files, capsys):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(2, 3, 3, 1)).astype(np.uint8)
    np.savez(files / "m.npz", x=images, x2=images.astype(np.float64))
    code, _, err = run(capsys, "kernel", "s.kc", "--data", "m.npz", "--x2", "x2")
    assert code == 2
    assert "--x (uint8) and --x2 (float64) have different dtypes" in err


def test_kernel_uint8_pair_is_scaled_once(files, capsys):
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, size=(2, 3, 3, 1)).astype(np.uint8)
    np.savez(files / "u.npz", x=images, x2=images)
    assert run(capsys, "kernel", "s.kc", "--data", "u.npz", "--x2", "x2", "--dtype", "float64",
               "--out", "cross.npz")[0] == 0
    assert run(capsys, "kernel", "s.kc", "--data", "u.npz", "--dtype", "float64",
               "--out", "gram.npz")[0] == 0
    cross, gram = np.load("cross.npz"), np.load("gram.npz")
    np.testing.assert_allclose(cross["nngp"], gram["nngp"], rtol=1e-12)


def test_kernel_random_is_refused_before_allocating(files, capsys):
    code, _, err = run(capsys, "kernel", "s.kc", "--random", 10**9, "--max-memory", "1GB")
    assert code == 2 and "memory error" in err and "more than the budget" in err


def test_kernel_random_inputs_alone_over_budget(files, capsys):
    # 3×3 inputs: the Gram matrix of 4e5 inputs is refused first; tiny result, big inputs is
    # the case here: a budget below the input bytes
    code, _, err = run(capsys, "kernel", "s.kc", "--random", 2000, "--max-memory", "100KB")
    assert code == 2 and "memory error" in err


def test_kernel_negative_seed(files, capsys):
    code, _, err = run(capsys, "kernel", "s.kc", "--random", 2, "--seed", -1)
    assert code == 2 and "--seed must be ≥ 0, got -1" in err


def test_compile_default_folder_that_cannot_be_made(files, capsys, monkeypatch):
    import pathlib

    def denied(self, *a, **k):  # what mkdir raises in a read-only folder (root may write anywhere)
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(pathlib.Path, "mkdir", denied)
    code, out, err = run(capsys, "compile", "s.kc")
    assert code == 2 and out == ""
    assert err.strip() == ("output error: compile (default output) generated/s.py: cannot create "
                           "the folder generated: Permission denied")


@pytest.mark.parametrize("argv, message", [
    (["--random", "0"], "input error: --random needs at least one input"),
    (["--random", "2", "--x", "x"], "input error: --x and --x2 choose arrays of --data; --random "
                                    "draws its inputs"),
    (["--random", "2", "--x2", "x"], "input error: --x and --x2 choose arrays of --data; --random "
                                     "draws its inputs"),
])
def test_kernel_random_input_options(files, capsys, argv, message):
    code, out, err = run(capsys, "kernel", "s.kc", *argv)
    assert code == 2 and out == "" and err.strip() == message


# -- inputs that used to pass unchecked (a number of some other request, or a crash later) -----
@pytest.mark.parametrize("n", [0, -5])
def test_explain_n_must_be_positive(files, capsys, n):
    # --n -5 printed the cost of a Gram matrix of 5 inputs, with exit status 0
    code, out, err = run(capsys, "explain", "s.kc", "--n", n)
    assert code == 2 and out == ""
    assert err.strip() == ("explain error: n (CLI: --n N), the number of inputs of the Gram "
                           f"matrix, must be a whole number ≥ 1, got {n}")


@pytest.mark.parametrize("command", ["predict", "fit"])
@pytest.mark.parametrize("reg", ["-1", "nan", "inf"])
def test_reg_is_checked_before_the_kernels(files, capsys, command, reg):
    code, out, err = run(capsys, command, "s.kc", "--train", "d.npz", "--reg", reg)
    assert code == 2 and out == ""  # nothing computed: it was refused as diag_reg afterwards
    assert err.strip() == f"input error: --reg must be a finite number >= 0, got {reg}"


def test_predict_refuses_test_targets_of_another_width(files, capsys):
    rng = np.random.default_rng(3)
    np.savez(files / "w.npz", x_train=rng.normal(size=(4, 3, 3, 1)), y_train=rng.normal(size=(4, 2)),
             x_test=rng.normal(size=(2, 3, 3, 1)), y_test=rng.normal(size=(2, 3)))
    code, out, err = run(capsys, "predict", "s.kc", "--train", "w.npz")
    assert code == 2 and out == ""  # was an internal error (a reshape) after the kernels
    assert err.strip() == ("input error: training targets 'y_train' have shape (4, 2) but test "
                           "targets 'y_test' have (2, 3)")


def test_a_label_that_is_an_id_is_refused_before_allocating(files, capsys, monkeypatch):
    monkeypatch.setenv("KERNELC_MAX_DATA", "1GB")
    rng = np.random.default_rng(4)
    np.savez(files / "ids.npz", x_train=rng.normal(size=(4, 3, 3, 1)),
             y_train=np.array([0, 1, 0, 10 ** 9]), x_test=rng.normal(size=(2, 3, 3, 1)),
             y_test=np.array([0, 1]))
    code, out, err = run(capsys, "predict", "s.kc", "--train", "ids.npz")
    assert code == 2 and out == ""  # was an internal MemoryError (45 GiB of one-hot targets)
    assert err.startswith("memory error: the largest label is 1000000000, so there are "
                          "1000000001 classes: one-hot targets and predictions of 6 examples "
                          "need 48.0 GB, more than the budget of 1.0 GB (KERNELC_MAX_DATA sets "
                          "it); class labels are indices 0..k-1: renumber them")


@pytest.mark.parametrize("argv, message", [
    (["--seed", "-1"], "input error: --seed must be ≥ 0, got -1"),  # was an internal error
    # a tolerance ≤ 0 or NaN failed the check and blamed "a kernelc bug"
    (["--check", "s.kc", "--tol", "-1"], "input error: --tol must be a positive number, got -1"),
    (["--check", "s.kc", "--tol", "nan"], "input error: --tol must be a positive number, got nan"),
    (["--check", "s.kc", "--noise", "-1"], "input error: --noise must be ≥ 0, got -1"),
])
def test_augment_numeric_options(files, capsys, argv, message):
    code, out, err = run(capsys, "augment", "s.kc", "--group", "p4", *argv)
    assert code == 2 and out == "" and err.strip() == message


def test_check_augmentation_refuses_a_tolerance_that_fails_every_check():
    import kernelc
    from kernelc.groups import get_group
    from kernelc.methods.augment import check_augmentation
    cnn = kernelc.compile(TINY)
    gcnn = kernelc.compile("group p4\ninput 3 x 3 channels 1\nlift(size=3, W_std=1.4, b_std=0.1, "
                           "padding=same)\nrelu\ngroup_pool\ndense(2)")
    for tol, shown in ((0, "0"), (float("nan"), "nan")):
        with pytest.raises(InputError, match=rf"tol \(CLI: --tol\) must be a positive number, "
                                             rf"got {shown}"):
            check_augmentation(cnn, gcnn, get_group("p4"), np.zeros((2, 3, 3, 1)), tol=tol)


def test_verify_negative_seed(files, capsys):
    code, out, err = run(capsys, "verify", "s.kc", "--seed", "-1", "--quiet")
    assert code == 2 and out == "" and err.strip() == "input error: --seed must be ≥ 0, got -1"


def test_verify_reads_a_missing_spec_as_a_file_not_as_spec_text(files, capsys):
    # verify took the spec as a str: a name of no file was parsed as spec text
    code, out, err = run(capsys, "verify", "nosuch", "--quiet")
    assert code == 2 and out == ""
    assert err.startswith("error: no such spec file: nosuch\n")


@pytest.mark.parametrize("get", ["", "NTK", "ntk,foo"])
def test_kernel_get_names_the_option(files, capsys, get):
    code, out, err = run(capsys, "kernel", "s.kc", "--random", "2", "--get", get)
    assert code == 2 and out == ""  # was "get must name 'nngp' and/or 'ntk', got ()"
    assert err.strip() == f"input error: --get takes nngp, ntk or nngp,ntk, got {get!r}"


def test_pool_larger_than_the_images_gives_no_impossible_hint(files, capsys):
    np.savez(files / "six.npz", x=np.zeros((2, 6, 6, 1)))
    code, _, err = run(capsys, "kernel", "s.kc", "--data", "six.npz", "--pool", "7")
    assert code == 2  # the hint was "crop to a multiple of 7 first, e.g. --crop 0 --pool 7"
    assert err.strip() == ("input error: --pool 7: inputs six.npz:'x' are 6×6, smaller than the "
                           "pooling factor 7")
