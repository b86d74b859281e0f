"""The version packaging/build-deb.sh derives from git: every later build sorts higher."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import BUILD_DEB, version_gt


class Tree:
    """A git work tree with build-deb.sh and a root pyproject.toml, as the repository has."""

    def __init__(self, path: Path) -> None:
        self.path = path
        (path / "packaging").mkdir()
        shutil.copy(BUILD_DEB, path / "packaging" / "build-deb.sh")
        (path / "pyproject.toml").write_text('[project]\nname = "x"\nversion = "0.1.0"\n')
        self.git("init", "-q")
        self.git("add", "-A")
        self.commit()

    def git(self, *args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(self.path), "-c", "user.name=t", "-c", "user.email=t@invalid", *args],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()

    def commit(self) -> None:
        self.git("commit", "-q", "--allow-empty", "-m", "change")

    def version(self) -> str:
        return subprocess.run(
            [str(self.path / "packaging" / "build-deb.sh"), "--print-version"],
            capture_output=True,
            text=True,
            check=True,
            env={"PATH": "/usr/bin:/bin", "HOME": str(self.path)},
        ).stdout.strip()


@pytest.fixture
def tree(tmp_path: Path) -> Tree:
    return Tree(tmp_path)


def test_before_the_first_tag_versions_lead_up_to_the_pyproject_version(tree: Tree) -> None:
    first = tree.version()
    assert first == f"0.1.0~git1.g{tree.git('rev-parse', '--short=7', 'HEAD')}"
    tree.commit()
    second = tree.version()
    assert version_gt(second, first)
    assert version_gt("0.1.0", second), "the release itself comes after its previews"


def test_a_tag_is_the_version_and_later_commits_sort_after_it(tree: Tree) -> None:
    before = tree.version()
    tree.git("tag", "v0.1.0")
    assert tree.version() == "0.1.0"
    assert version_gt("0.1.0", before)
    tree.commit()
    after = tree.version()
    assert after.startswith("0.1.0+git1.g")
    assert version_gt(after, "0.1.0")
    tree.commit()
    assert version_gt(tree.version(), after)


def test_uncommitted_changes_sort_after_the_commit(tree: Tree) -> None:
    clean = tree.version()
    (tree.path / "new.txt").write_text("work in progress\n")
    dirty = tree.version()
    assert dirty.startswith(clean + ".d")
    assert version_gt(dirty, clean)
