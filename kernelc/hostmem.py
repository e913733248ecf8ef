"""The host's memory as the kernel reports it to this process: what ``kernel_fn``'s default
memory budget starts from (:func:`kernelc.runtime.driver.available_memory`).

Kept outside :mod:`kernelc.runtime` because it reads files (``/proc/meminfo``, the cgroup's
``memory.max``), which generated and standalone modules may not do (``kernelc.api``'s checks);
the runtime imports it when kernelc is installed, and a standalone module falls back to
``os.sysconf``.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

__all__ = ["CGROUP_FILES", "meminfo_available", "cgroup_room", "resident_bytes",
           "peak_resident_bytes", "reset_peak"]

#: (limit, usage) files of the process's memory cgroup: v2, then v1
CGROUP_FILES = (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                 "/sys/fs/cgroup/memory/memory.usage_in_bytes"))


def _read_int(path: str) -> Optional[int]:
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None  # "max" (no limit) reads as None


def meminfo_available(path: str = "/proc/meminfo") -> Optional[int]:
    """The kernel's estimate of the bytes that can be allocated without swapping
    (``MemAvailable``: free memory plus reclaimable caches), or None where it is not reported."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def cgroup_room(files: Optional[Sequence[Tuple[str, str]]] = None,
                below: Optional[int] = None) -> Optional[int]:
    """Bytes left under the process's cgroup memory limit (limit - usage: a container's limit is
    often far below the machine's RAM), or None without a limit; a limit of ``below`` or more
    (cgroup v1 writes a huge number for "no limit") counts as none. ``files``: (limit, usage)
    paths, by default :data:`CGROUP_FILES`."""
    for limit, usage in CGROUP_FILES if files is None else files:
        cap = _read_int(limit)
        if cap is not None and (below is None or cap < below):
            return max(cap - (_read_int(usage) or 0), 0)
    return None


# -- this process's own memory (what benchmarks/memory.py and tests/runtime/test_memory.py
# measure a run by) -----------------------------------------------------------------------------
def resident_bytes() -> int:
    """This process's resident memory now (/proc/self/statm)."""
    import resource
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def peak_resident_bytes() -> int:
    """The peak resident memory since the last :func:`reset_peak` (VmHWM), or since start
    (``ru_maxrss``) where /proc has no VmHWM."""
    import resource
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def reset_peak() -> bool:
    """Set the peak to the current resident memory (Linux >= 4.0); False where it cannot."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False
