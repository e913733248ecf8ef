"""Gram matrices written to disk tile by tile, and resumed after an interruption.

``kernel_fn(x1, ..., out=FOLDER)`` keeps each requested Gram matrix in ``FOLDER/<name>.npy`` (a
memory-mapped .npy file: numpy reads it, ``np.load(path, mmap_mode="r")`` without loading it)
and records the finished tiles of input pairs in ``FOLDER/tiles_done.npy``, flushed after each
tile. ``FOLDER/run.npy`` (JSON text) fingerprints the computation (network code and constants,
inputs, dtype, kernels, map evaluation, tiling); running the same call again computes only the tiles not yet done, and
a folder that holds another computation is refused.

Several processes (``jax.distributed``, a global mesh): process 0 alone creates, writes and
marks the store, exactly as one process would, so a run is resumed the same way (every process
calls kernel_fn again with the same out=); the others follow its marks (:class:`StoreFollower`)
and, at the end, open the finished files read-only, so ``out`` must be a folder every process
sees (a shared file system). Only one writer: processes writing disjoint entries of one
memory-mapped file on a network file system would write back whole pages and overwrite each
other's entries. Plain .npy files rather than a chunked
format (zarr): the Gram matrices are dense and uncompressible, each tile writes scattered
entries (i, j) and (j, i), and .npy needs nothing but numpy.
"""
from __future__ import annotations

import hashlib
import json
import os

import numpy as np

from kernelc.runtime.errors import OutputError

__all__ = ["GramStore", "StoreFollower", "fingerprint"]

RUN_FILE = "run.npy"  # the run's description, JSON text in a 0-d array
DONE_FILE = "tiles_done.npy"


def fingerprint(*parts) -> str:
    """SHA-256 of the parts: arrays by dtype, shape and bytes, others by repr. kernel_fn
    fingerprints a run by its inputs, dtype, kernels and the self-pass kernels of the inputs:
    those identify the network too (another spec gives other diagonal kernels)."""
    h = hashlib.sha256()
    for part in parts:
        if part is not None and not isinstance(part, (str, int, float, tuple, list, bool)):
            part = np.asarray(part)
            h.update(f"{part.dtype}{part.shape}".encode())
            h.update(np.ascontiguousarray(part).tobytes())
        else:
            h.update(repr(part).encode())
    return h.hexdigest()


class GramStore:
    """The on-disk Gram matrices of one computation in ``folder`` (made if missing): ``arrays``
    maps each kernel name to its memory-mapped (n1, n2, ...) array, ``done`` the finished tiles."""

    writes = True  # it holds the matrices (a StoreFollower does not)

    def __init__(self, folder, run: dict, shapes: dict, dtype, n_tiles: int):
        self.folder = os.fspath(folder)
        if os.path.exists(self.folder) and not os.path.isdir(self.folder):
            raise OutputError(f"out={self.folder!r} is a file; give a folder for the Gram "
                              "matrices (it is made if missing)")
        try:
            os.makedirs(self.folder, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot make the folder {self.folder!r}: {exc.strerror}") from None
        run = dict(run, tiles=n_tiles, kernels=sorted(shapes))
        run_path = os.path.join(self.folder, RUN_FILE)
        previous = self._read_run(run_path)
        if previous is not None and previous != run:
            raise OutputError(
                f"{self.folder!r} holds the Gram matrices of another computation (other "
                "inputs, network, dtype, kernels, fast_maps or memory budget); give an empty or "
                "new folder, or delete this one")
        fresh = previous is None or not all(
            os.path.isfile(p) for p in
            [os.path.join(self.folder, DONE_FILE)] + [self._path(name) for name in shapes])
        mode = "w+" if fresh else "r+"
        if not fresh:  # r+ would take any file's own shape and dtype, and pad a short one
            self._check_file(os.path.join(self.folder, DONE_FILE), (n_tiles,), np.dtype(bool))
            for name, shape in shapes.items():
                self._check_file(self._path(name), tuple(shape), np.dtype(dtype))
        try:
            self.done = np.lib.format.open_memmap(os.path.join(self.folder, DONE_FILE), mode,
                                                  dtype=bool, shape=(n_tiles,))
            self.arrays = {name: np.lib.format.open_memmap(
                self._path(name), mode, dtype=np.dtype(dtype), shape=shape)
                for name, shape in shapes.items()}
        except OSError as exc:
            raise OutputError(f"cannot write the Gram matrices in {self.folder!r}: "
                              f"{exc.strerror or exc}") from None
        if fresh:
            self.done[:] = False
            self.done.flush()
            np.save(run_path, np.array(json.dumps(run)))  # last: then the arrays exist

    def _check_file(self, path, shape, dtype):
        """Refuse (OutputError) a file of a run being resumed that is not the .npy array the
        run wrote: another shape or dtype, or shorter than its header says (a copy or a disk
        that stopped half-way). Opened with mode r+, numpy would pad a short file with zeros
        and take another shape or dtype as it is: tiles marked done would then read as zeros."""
        problem = None
        try:  # np.fromfile, not open(): this module is inlined into standalone modules
            head = _Bytes(np.fromfile(path, dtype=np.uint8, count=1 << 16).tobytes())
            version = np.lib.format.read_magic(head)
            read = {(1, 0): np.lib.format.read_array_header_1_0,
                    (2, 0): np.lib.format.read_array_header_2_0}.get(version)
            if read is None:  # open_memmap writes versions 1.0 and 2.0 only
                raise ValueError(f".npy format version {version}")
            got_shape, fortran, got_dtype = read(head)
            offset, in_c_order = head.at, not fortran or len(got_shape) < 2
            size = os.path.getsize(path)
        except (OSError, ValueError, EOFError) as exc:
            problem = f"not a readable .npy array ({exc})"
        else:
            need = offset + int(np.prod(shape)) * dtype.itemsize
            if tuple(got_shape) != shape or got_dtype != dtype:
                problem = (f"an array of shape {tuple(got_shape)} and dtype {got_dtype}, not "
                           f"the {shape} of {dtype} this run writes")
            elif not in_c_order:
                problem = "in Fortran order, not the C order this run writes"
            elif size != need:
                problem = (f"{size} bytes long instead of {need}"
                           + (" (cut short?)" if size < need else ""))
        if problem:
            raise OutputError(
                f"{self.folder!r} holds this computation, but {os.path.basename(path)} is "
                f"{problem}; delete that file (or the folder) to compute the Gram matrices "
                "again")

    @staticmethod
    def _read_run(path):
        if not os.path.exists(path):
            return None
        try:
            return json.loads(str(np.load(path)))
        except (OSError, ValueError):
            return {"unreadable": True}  # never matches: refused as another computation

    def write(self, tile: int, entries: dict, I, J, mirror: bool, swap=None):
        """Store one finished tile's values at (I, J) (and (J, I) when mirrored, through
        ``swap`` for a feature-map output), then mark it done; the arrays are flushed before the
        mark, so a done tile is on disk."""
        for name, vals in entries.items():
            array = self.arrays[name]
            array[I, J] = vals
            if mirror:
                array[J, I] = vals if swap is None else swap(vals)
            array.flush()
        self.done[tile] = True
        self.done.flush()

    def finished(self) -> dict:
        """The Gram matrices, flushed (the caller may have written the self pairs) and opened
        again read-only from their files."""
        for array in self.arrays.values():
            array.flush()
        return {name: np.load(self._path(name), mmap_mode="r") for name in self.arrays}

    def _path(self, name):
        return _gram_path(self.folder, name)


def _gram_path(folder, name):
    """Where the Gram matrix of the kernel ``name`` lives in ``folder``."""
    return os.path.join(folder, f"{name}.npy")


class StoreFollower:
    """An on-disk run as seen by a process other than process 0 of several: ``done`` holds the
    marks process 0 read from ``tiles_done.npy`` (the tiles to skip), ``write`` marks a tile
    without writing (process 0 writes its values), and ``finished`` opens the matrices read-only
    from ``folder`` once process 0 has finished them."""

    writes = False

    def __init__(self, folder, shapes: dict, done):
        self.folder = os.fspath(folder)
        self.arrays = dict.fromkeys(shapes)  # the kernels' names: what the tiles bring back
        self.done = np.array(done, bool)

    def write(self, tile: int, entries: dict, I, J, mirror: bool, swap=None):
        self.done[tile] = True

    def finished(self) -> dict:
        grams = {}
        for name in self.arrays:
            path = _gram_path(self.folder, name)
            try:
                grams[name] = np.load(path, mmap_mode="r")
            except OSError:
                raise OutputError(
                    f"this process cannot read {path!r}, which process 0 has written: with "
                    "several processes, out= must be a folder every process sees (a shared "
                    "file system)") from None
        return grams


class _Bytes:
    """The first bytes of a file, read like one (numpy's .npy header readers call read(k))."""

    def __init__(self, data: bytes):
        self.data, self.at = data, 0

    def read(self, k: int) -> bytes:
        chunk = self.data[self.at:self.at + k]
        self.at += len(chunk)
        return chunk
