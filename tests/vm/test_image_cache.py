"""The VM image cache keeps what another checkout still uses, and stays bounded.

Two branches (or clones) whose image inputs differ share ``~/.cache/labpower/vm``: building
one image must not delete the other's if it was used lately, or each run rebuilds (~85 s
cold) what the other just built. These tests build no image: they lay out cache entries as
the build leaves them (a directory with ``done``, whose mtime is the last use).
"""

from __future__ import annotations

import fcntl
import importlib
import os
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
build_image: Any = importlib.import_module("build_image")  # untyped for mypy

NOW = 1_800_000_000.0
HOUR = 3600.0


def image(cache: Path, key: str, used_ago: float) -> Path:
    """A built image ``key`` in ``cache``, last used ``used_ago`` seconds before NOW."""
    d = cache / key
    d.mkdir()
    (d / "root.img").write_bytes(b"\0" * 16)
    (d / "done").write_text("linux-image-test\n")
    os.utime(d / "done", (NOW - used_ago, NOW - used_ago))
    return d


def left(cache: Path) -> set[str]:
    return {d.name for d in cache.iterdir() if d.is_dir()}


def test_an_image_another_checkout_used_today_stays_an_old_one_goes(tmp_path: Path) -> None:
    new = image(tmp_path, "new", 0)
    image(tmp_path, "branch", 20 * HOUR)
    image(tmp_path, "stale", 25 * HOUR)
    removed = build_image.prune(tmp_path, keep=new, now=NOW)
    assert [p.name for p in removed] == ["stale"]
    assert left(tmp_path) == {"new", "branch"}


def test_the_cache_is_bounded_least_recently_used_first_but_not_one_in_use(
    tmp_path: Path,
) -> None:
    assert build_image.MAX_IMAGES == 3
    new = image(tmp_path, "new", 0)
    image(tmp_path, "a", 1 * HOUR)
    image(tmp_path, "b", 2 * HOUR)
    image(tmp_path, "c", 3 * HOUR)
    image(tmp_path, "d", 4 * HOUR)
    build_image.prune(tmp_path, keep=new, now=NOW)
    assert left(tmp_path) == {"new", "a", "b"}
    # an image a run may be booting right now stays even beyond the bound
    image(tmp_path, "booting", 60)
    image(tmp_path, "e", 30)
    build_image.prune(tmp_path, keep=new, now=NOW)
    assert left(tmp_path) == {"new", "booting", "e"}


def test_an_image_locked_elsewhere_is_left_alone(tmp_path: Path) -> None:
    new = image(tmp_path, "new", 0)
    image(tmp_path, "stale", 48 * HOUR)
    with open(tmp_path / "stale.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        assert build_image.prune(tmp_path, keep=new, now=NOW) == []
    assert [p.name for p in build_image.prune(tmp_path, keep=new, now=NOW)] == ["stale"]


def test_what_a_killed_build_left_goes_a_build_in_progress_stays(tmp_path: Path) -> None:
    new = image(tmp_path, "new", 0)
    (tmp_path / "killed.x1y2z3").mkdir()  # no "done", and nobody holds killed.lock
    (tmp_path / "building.a1b2c3").mkdir()
    with open(tmp_path / "building.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        build_image.prune(tmp_path, keep=new, now=NOW)
    assert left(tmp_path) == {"new", "building.a1b2c3"}


def test_finding_the_image_built_marks_it_used(tmp_path: Path) -> None:
    key = build_image.cache_key(build_image.kernel_package())
    built = image(tmp_path, key, 30 * HOUR)
    assert build_image.build(tmp_path) == built
    assert time.time() - (built / "done").stat().st_mtime < 60  # now, not 30 h before NOW
    assert (built / "root.img").exists()
