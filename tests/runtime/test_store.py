"""Gram matrices on disk, tile by tile, resumed after an interruption (kernelc.runtime.store)."""
import json

import numpy as np
import pytest

import kernelc
from kernelc.errors import OutputError

SPEC = "group p4\ninput 3 x 3 channels 1\nlift(size=3, b_std=0.1)\nrelu\ngroup_pool\ndense(1)"


@pytest.fixture(scope="module")
def net():
    return kernelc.compile(SPEC)


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(0).normal(size=(9, 3, 3, 1))


class Interrupted(Exception):
    pass


def _interrupt_after(net, tiles, monkeypatch):
    """Make the Gram tiles fail on the (tiles + 1)-th, as a killed run would stop (the self
    pairs, flagged in the pass's last argument, run on)."""
    pass_fn = net.kernel_fn.compiled_passes[True, True, None]
    calls = {"n": 0}
    original = type(pass_fn).__call__

    def call(self, *args):
        if self is pass_fn and not np.any(np.asarray(args[-1])):
            calls["n"] += 1
            if calls["n"] > tiles:
                raise Interrupted
        return original(self, *args)
    monkeypatch.setattr(type(pass_fn), "__call__", call)
    return calls


def test_an_interrupted_gram_matrix_resumes_where_it_stopped(net, x, tmp_path, monkeypatch):
    expected = net.kernel_fn(x, dtype="float64")
    folder = tmp_path / "grams"
    per_pair = net.module.BYTES_PER_PAIR * 2  # float64
    stats_entries = sum(int(np.prod(shape)) for shape in net.module.STATS_SHAPES)
    budget = 2 * len(x) * stats_entries * 8 + 5 * per_pair  # tiles of 5 pairs
    with monkeypatch.context() as m:
        calls = _interrupt_after(net, 2, m)
        with pytest.raises(Interrupted):
            net.kernel_fn(x, dtype="float64", out=folder, max_memory=budget)
    done = np.load(folder / "tiles_done.npy")
    assert done.sum() == 2 and len(done) > 3
    with monkeypatch.context() as m:
        calls = _interrupt_after(net, 10 ** 6, m)
        grams = net.kernel_fn(x, dtype="float64", out=folder, max_memory=budget)
    assert calls["n"] == len(done) - 2  # only the missing tiles were computed
    for name in ("nngp", "ntk"):
        assert isinstance(grams[name], np.memmap)
        # other tiles than the in-memory run's: equal to rounding
        np.testing.assert_allclose(grams[name], expected[name], rtol=1e-13, atol=0)
        np.testing.assert_array_equal(np.load(folder / f"{name}.npy"), grams[name])
    assert json.loads(str(np.load(folder / "run.npy")))["tiles"] == len(done)


def test_a_folder_of_another_computation_is_refused(net, x, tmp_path):
    folder = tmp_path / "grams"
    net.kernel_fn(x[:4], get="nngp", out=folder)
    with pytest.raises(OutputError, match="holds the Gram matrices of another computation"):
        net.kernel_fn(x[:5], get="nngp", out=folder)  # other inputs
    with pytest.raises(OutputError, match="another computation"):
        net.kernel_fn(x[:4], get="ntk", out=folder)  # another kernel
    with pytest.raises(OutputError, match=r"another computation \(other inputs, network, "
                                          r"dtype, kernels, fast_maps or memory budget\)"):
        # the maps evaluated otherwise than the tiles on disk (float32: relu's fast by default)
        net.kernel_fn(x[:4], get="nngp", out=folder, fast_maps=False)
    other = kernelc.compile(SPEC.replace("b_std=0.1", "b_std=0.2"))
    with pytest.raises(OutputError, match="another computation"):
        other.kernel_fn(x[:4], get="nngp", out=folder)  # another network
    file = tmp_path / "file"
    file.write_text("")
    with pytest.raises(OutputError, match="is a file; give a folder"):
        net.kernel_fn(x[:4], out=file)


def test_the_results_are_not_held_in_the_memory_budget(net):
    # an explicit budget: the default one follows this machine's free memory
    in_memory = net.module.plan_memory(20000, dtype="float32", max_memory="8GB")
    on_disk = net.module.plan_memory(20000, dtype="float32", max_memory="8GB",
                                     results_on_disk=True)
    assert in_memory["result_bytes"] > 0 and on_disk["result_bytes"] == 0
    assert on_disk["tile_pairs"] >= in_memory["tile_pairs"]


def test_the_cli_writes_and_resumes_a_folder(tmp_path, capsys):
    from kernelc.cli import main
    spec = tmp_path / "s.kc"
    spec.write_text(SPEC)
    folder = tmp_path / "grams"
    argv = ["kernel", str(spec), "--random", "3", "--get", "nngp", "--out-dir", str(folder)]
    assert main(argv) == 0
    first = np.load(folder / "nngp.npy")
    assert f"wrote {folder / 'nngp.npy'}" in capsys.readouterr().out
    assert main(argv) == 0  # every tile done: nothing computed again, the same numbers
    np.testing.assert_array_equal(np.load(folder / "nngp.npy"), first)
    assert main(argv[:-2] + ["--out-dir", str(folder), "--out", str(tmp_path / "k.npz")]) == 2
    assert "--out writes one .npz and --out-dir a folder" in capsys.readouterr().err


def test_a_folder_that_cannot_be_made_or_written_is_named(net, x, tmp_path):
    (tmp_path / "file").write_text("")
    under_a_file = tmp_path / "file" / "grams"
    with pytest.raises(OutputError, match=r"cannot make the folder '.*file/grams': Not a directory"):
        net.kernel_fn(x[:4], get="nngp", out=under_a_file)
    folder = tmp_path / "blocked"
    (folder / "nngp.npy").mkdir(parents=True)  # where the Gram matrix's file would go
    with pytest.raises(OutputError, match=r"cannot write the Gram matrices in '.*blocked': "
                                          r"Is a directory"):
        net.kernel_fn(x[:4], get="nngp", out=folder)


def test_a_follower_process_that_cannot_see_the_folder_says_it_must_be_shared(tmp_path):
    from kernelc.runtime.store import StoreFollower
    follower = StoreFollower(tmp_path, {"nngp": (2, 2)}, [True])
    with pytest.raises(OutputError, match=r"this process cannot read '.*nngp\.npy', which process 0 "
                                          r"has written: with several processes, out= must be a "
                                          r"folder every process sees"):
        follower.finished()


@pytest.mark.parametrize("damage, message", [
    (lambda f: f.write_bytes(f.read_bytes()[:-16]), r"nngp\.npy is \d+ bytes long instead of "
                                                     r"\d+ \(cut short\?\)"),
    (lambda f: np.save(f, np.zeros((2, 2))), r"nngp\.npy is an array of shape \(2, 2\) and dtype "
                                             r"float64, not the \(4, 4\) of float64"),
    (lambda f: np.save(f, np.zeros((4, 4), np.float32)), r"nngp\.npy is an array of shape "
                                                         r"\(4, 4\) and dtype float32"),
    (lambda f: f.with_name("tiles_done.npy").write_bytes(b""),
     r"tiles_done\.npy is not a readable \.npy array"),
])
def test_a_damaged_file_of_a_finished_run_is_refused_not_read_as_zeros(net, x, tmp_path, damage,
                                                                       message):
    """A resumed run opens its files with mode r+, which pads a short file with zeros and takes
    another shape or dtype as it is: tiles marked done then read as zeros (a Gram matrix with
    zero entries and exit status 0). Refused, naming the file; deleting it recomputes."""
    folder = tmp_path / "grams"
    expected = np.array(net.kernel_fn(x[:4], get="nngp", dtype="float64", out=folder))
    damage(folder / "nngp.npy")
    with pytest.raises(OutputError, match=r"'.*grams' holds this computation, but " + message
                       + r".*; delete that file \(or the folder\) to compute the Gram matrices "
                         "again"):
        net.kernel_fn(x[:4], get="nngp", dtype="float64", out=folder)
    for name in ("nngp.npy", "tiles_done.npy"):
        (folder / name).unlink(missing_ok=True)
    again = net.kernel_fn(x[:4], get="nngp", dtype="float64", out=folder)
    np.testing.assert_array_equal(again, expected)
