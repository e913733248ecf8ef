"""Bad data files end in clean InputError/MemoryBudgetError messages: corrupt archives, members
that are not .npy arrays, and arrays (or zip bombs) whose declared size exceeds the budget."""
import io
import zipfile

import numpy as np
import pytest

from kernelc.errors import InputError, MemoryBudgetError
from kernelc.methods import data as data_mod
from kernelc.methods.data import data_budget, load_arrays, parse_bytes


def _npy_bytes(arr):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, arr)
    return buf.getvalue()


def _zip(path, members, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _flip_middle(path, start_fraction=0.5):
    raw = bytearray(path.read_bytes())
    i = int(len(raw) * start_fraction)
    raw[i:i + 16] = bytes(b ^ 0xFF for b in raw[i:i + 16])
    path.write_bytes(bytes(raw))


def test_corrupt_compressed_data(tmp_path):
    f = tmp_path / "c.npz"
    np.savez_compressed(f, x=np.random.default_rng(0).normal(size=(64, 64)))
    _flip_middle(f)
    with pytest.raises(InputError, match=r"c.npz: array 'x' (cannot be read|is not a readable)"):
        load_arrays(f)


def test_corrupt_stored_data_fails_its_crc(tmp_path):
    f = tmp_path / "s.npz"
    np.savez(f, x=np.random.default_rng(0).normal(size=(64, 64)))
    _flip_middle(f)
    with pytest.raises(InputError, match=r"s.npz: array 'x' cannot be read \(the file is "
                                         r"corrupt\?\): Bad CRC-32"):
        load_arrays(f)


def test_truncated_archive(tmp_path):
    f = tmp_path / "t.npz"
    np.savez(f, x=np.ones((64, 64)))
    f.write_bytes(f.read_bytes()[:5000])
    with pytest.raises(InputError, match=r"t.npz is not a readable .npz archive: "):
        load_arrays(f)


def test_member_that_is_not_npy(tmp_path):
    f = _zip(tmp_path / "m.npz", {"x.npy": _npy_bytes(np.ones(3)), "notes.txt": b"hello"})
    with pytest.raises(InputError, match=r"m.npz: member 'notes.txt' is not a .npy array; an "
                                         r".npz archive \(as np.savez writes it\) holds only "):
        load_arrays(f)


def test_member_with_a_bad_npy_header(tmp_path):
    f = _zip(tmp_path / "h.npz", {"x.npy": b"\x93NUMPY\x01\x00garbage"})
    with pytest.raises(InputError, match=r"h.npz: array 'x' is not a readable .npy array: "):
        load_arrays(f)
    g = _zip(tmp_path / "g.npz", {"x.npy": b"just text"})
    with pytest.raises(InputError, match=r"g.npz: array 'x' is not a readable .npy array: "):
        load_arrays(g)


def test_truncated_array_data(tmp_path):
    f = _zip(tmp_path / "d.npz", {"x.npy": _npy_bytes(np.ones((10, 10)))[:-40]})
    with pytest.raises(InputError, match=r"d.npz: array 'x' cannot be read \(the file is corrupt"):
        load_arrays(f)


def test_object_array_refused_from_its_header(tmp_path):
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|O", "fortran_order": False,
                                                  "shape": (2,)})
    f = _zip(tmp_path / "o.npz", {"x.npy": header.getvalue() + b"\x80\x04pickle"})
    with pytest.raises(InputError, match=r"o.npz cannot be read without pickle \(object arrays\?"
                                         r"\): array 'x' has dtype object"):
        load_arrays(f)


def test_declared_size_over_the_budget_is_refused_before_loading(tmp_path):
    """A header claiming a 8 TB array (the data is not there at all) is refused unread."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False,
                                                  "shape": (10 ** 6, 10 ** 6)})
    f = _zip(tmp_path / "huge.npz", {"x.npy": header.getvalue()})
    with pytest.raises(MemoryBudgetError) as info:
        data_mod._read_npz(f, max_bytes=10 ** 9)
    assert str(info.value) == (
        f"memory error: {f}: array 'x' declares shape (1000000, 1000000) of float64 (8.0 TB); the "
        "file's arrays need at least 8.0 TB, more than the budget of 1.0 GB for data files (set "
        "KERNELC_MAX_DATA, e.g. KERNELC_MAX_DATA=64GB, to allow more)")


def test_zip_bomb_is_refused_without_inflating(tmp_path, monkeypatch):
    f = tmp_path / "bomb.npz"
    np.savez_compressed(f, x=np.zeros((2000, 2000)))  # 32 MB of zeros in ~30 kB
    assert f.stat().st_size < 100_000
    monkeypatch.setenv("KERNELC_MAX_DATA", "10MB")
    with pytest.raises(MemoryBudgetError, match=r"bomb.npz: array 'x' declares shape "
                                                r"\(2000, 2000\) of float64 \(32.0 MB\).*budget "
                                                r"of 10.0 MB"):
        load_arrays(f)
    monkeypatch.setenv("KERNELC_MAX_DATA", "64MB")
    assert load_arrays(f)[0].shape == (2000, 2000)


def test_the_budget_counts_all_arrays_together(tmp_path):
    f = tmp_path / "two.npz"
    np.savez(f, x=np.zeros(100), y=np.zeros(100))  # 800 bytes each
    assert load_arrays(f, "x", "y")[0].shape == (100,)
    with pytest.raises(MemoryBudgetError, match=r"need at least 1.6 kB, more than the budget of "
                                                r"1.0 kB"):
        data_mod._read_npz(f, max_bytes=1000)


def test_too_many_members(tmp_path, monkeypatch):
    monkeypatch.setattr(data_mod, "_MAX_MEMBERS", 2)
    f = tmp_path / "many.npz"
    np.savez(f, a=np.ones(1), b=np.ones(1), c=np.ones(1))
    with pytest.raises(InputError, match=r"many.npz holds 3 files; more than 2 arrays is not a "
                                         r"data set kernelc reads"):
        load_arrays(f, "a")


def test_budget_setting(monkeypatch):
    assert parse_bytes("8GB") == 8 * 10 ** 9 and parse_bytes("512 MiB") == 512 * 2 ** 20
    assert parse_bytes("1e6") == 10 ** 6 and parse_bytes("100kb") == 10 ** 5
    monkeypatch.setenv("KERNELC_MAX_DATA", "3GB")
    assert data_budget() == 3 * 10 ** 9
    monkeypatch.setenv("KERNELC_MAX_DATA", "lots")
    with pytest.raises(InputError, match=r"KERNELC_MAX_DATA: cannot read 'lots' as a size; use "
                                         r"e.g. 8GB or 512MB"):
        data_budget()
    monkeypatch.setenv("KERNELC_MAX_DATA", "0")
    with pytest.raises(InputError, match=r"KERNELC_MAX_DATA: the size must be positive, got '0'"):
        data_budget()
    monkeypatch.delenv("KERNELC_MAX_DATA")
    assert data_budget() > 10 ** 8


def test_cli_reports_bad_data_cleanly(tmp_path, capsys, monkeypatch):
    from kernelc.cli import main
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.kc").write_text("network t\ngroup Z2\ninput 3 x 3 channels 1\nflatten\n"
                                   "dense(1)\n")
    np.savez_compressed(tmp_path / "c.npz", x=np.random.default_rng(0).normal(size=(64, 3, 3, 1)))
    _flip_middle(tmp_path / "c.npz")
    _zip(tmp_path / "m.npz", {"notes.txt": b"x"})
    np.savez_compressed(tmp_path / "b.npz", x=np.zeros((1000, 3, 3, 1)))
    monkeypatch.setenv("KERNELC_MAX_DATA", "10kB")
    for name, status, message in (("c.npz", 2, "input error: c.npz"),
                                  ("m.npz", 2, "input error: m.npz: member 'notes.txt'"),
                                  ("b.npz", 2, "memory error: b.npz: array 'x' declares")):
        code = main(["kernel", "s.kc", "--data", name])
        err = capsys.readouterr().err
        assert code == status and err.startswith(message), err
        assert "Traceback" not in err
