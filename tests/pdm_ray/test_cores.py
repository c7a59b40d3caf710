"""claim_core gives each process a core of its own; the task environment gets glibc huge pages."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from pdm_ray.cores import ONE_CORE_ENV

CLAIM = """
import os, sys
from pathlib import Path
from pdm_ray.cores import claim_core
core = claim_core(Path(sys.argv[1]))
print(core, sorted(os.sched_getaffinity(0)), flush=True)
sys.stdin.readline()  # hold the core until told to exit
"""

needs_two_cores = pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs at least 2 cores")


def _start(lock_dir: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CLAIM, str(lock_dir)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )


@needs_two_cores
def test_concurrent_processes_get_distinct_cores_and_are_pinned_to_them(tmp_path: Path) -> None:
    cores = sorted(os.sched_getaffinity(0))
    procs = [_start(tmp_path) for _ in range(len(cores) + 1)]
    try:
        lines = [p.stdout.readline().split(" ", 1) for p in procs if p.stdout]
    finally:
        for p in procs:
            p.communicate("\n", timeout=60)
    claimed = [line[0] for line in lines]
    pinned = [core for core in claimed if core != "None"]
    assert sorted(int(c) for c in pinned) == cores  # every core taken once
    assert claimed.count("None") == 1  # one process more than cores: it is left unpinned
    for core, affinity in lines:
        expected = f"[{core}]" if core != "None" else str(cores)
        assert affinity.strip() == expected


@needs_two_cores
def test_a_core_is_free_again_when_its_holder_exits(tmp_path: Path) -> None:
    first = _start(tmp_path)
    assert first.stdout is not None
    core = first.stdout.readline().split()[0]
    first.communicate("\n", timeout=60)
    second = _start(tmp_path)
    assert second.stdout is not None
    assert second.stdout.readline().split()[0] == core
    second.communicate("\n", timeout=60)


FAULTS = """
import ctypes, resource
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
ctypes.memset(libc.malloc(100_000_000), 1, 100_000_000)  # a block as large as an LSTM step's temporaries
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _page_faults(env: dict[str, str]) -> int:
    out = subprocess.run([sys.executable, "-c", FAULTS], env=env, capture_output=True, text=True, check=True)
    return int(out.stdout)


def test_the_task_environment_keeps_the_users_glibc_tunables() -> None:
    env = {**os.environ, "GLIBC_TUNABLES": "glibc.malloc.tcache_count=0"}
    code = "from pdm_ray.cores import ONE_CORE_ENV; print(ONE_CORE_ENV['GLIBC_TUNABLES'])"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "glibc.malloc.tcache_count=0:glibc.malloc.hugetlb=1"


THP = Path("/sys/kernel/mm/transparent_hugepage/enabled")


GLIBC = platform.libc_ver()
HUGETLB_TUNABLE = GLIBC[0] == "glibc" and tuple(int(x) for x in GLIBC[1].split(".")[:2]) >= (2, 35)


@pytest.mark.skipif(not HUGETLB_TUNABLE, reason="glibc.malloc.hugetlb needs glibc 2.35 or later")
@pytest.mark.skipif(
    not THP.exists() or "[madvise]" not in THP.read_text(), reason="huge pages must be opt-in (madvise) to compare"
)
def test_the_task_environment_maps_large_blocks_with_huge_pages() -> None:
    plain = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    without = _page_faults(plain)
    with_tunable = _page_faults({**plain, "GLIBC_TUNABLES": ONE_CORE_ENV["GLIBC_TUNABLES"]})
    assert with_tunable < without / 4, (with_tunable, without)
