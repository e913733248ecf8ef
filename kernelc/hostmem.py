"""The host's memory as the kernel reports it to this process: what ``kernel_fn``'s default
memory budget starts from (:func:`kernelc.runtime.driver.available_memory`).

Kept outside :mod:`kernelc.runtime` because it reads files (``/proc/meminfo``, the cgroup's
``memory.max``), which generated and standalone modules may not do (``kernelc.api``'s checks);
the runtime imports it when kernelc is installed, and a standalone module falls back to
``os.sysconf``.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

__all__ = ["CGROUP_FILES", "meminfo_available", "cgroup_room"]

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
