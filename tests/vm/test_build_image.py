"""The lab-host image build must work from inside the test run itself.

Under ``uv run`` the ``python3`` first on PATH is the project venv's, which has no pip: an
image build that ran ``python3 -m pip`` passed only where an earlier run had left the image
in the cache (issue 13). This fetches the guest venv's wheels exactly as the build does, from
this test's own environment, so it fails again if the build comes to depend on the venv.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
build_image: Any = importlib.import_module("build_image")  # untyped for mypy


def test_the_venv_on_path_has_no_pip_and_the_build_does_not_need_it(tmp_path: Path) -> None:
    venv_python = shutil.which("python3")
    assert venv_python is not None
    if os.environ.get("VIRTUAL_ENV"):
        # the situation of issue 13: the test venv's python3 comes first and has no pip
        assert Path(venv_python).parent == Path(os.environ["VIRTUAL_ENV"]) / "bin"
        assert importlib.util.find_spec("pip") is None
    build_image.fetch_wheels(tmp_path)
    names = {p.name.split("-")[0].lower() for p in tmp_path.glob("*.whl")}
    wanted = {p.split(">")[0].split("=")[0].split("<")[0].lower() for p in build_image.PYPI}
    assert wanted <= names, f"missing wheels: {wanted - names}"
