"""Wheels and sdists for PyPI: one version from git for all three, the right metadata, and a
client that installs alone."""

from __future__ import annotations

import email.parser
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DISTS = ("labpower_client", "labpower_backends", "labpower_daemon")


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        ["uv", "build", "--all-packages", "--out-dir", str(out), "--quiet"],
        cwd=ROOT,
        check=True,
        timeout=300,
    )
    return out


def metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as z:
        name = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        return email.parser.BytesParser().parsebytes(z.read(name))


def wheel_of(dist: Path, name: str) -> Path:
    (wheel,) = dist.glob(f"{name}-*.whl")
    return wheel


def requires(wheel: Path) -> list[str]:
    return sorted(metadata(wheel).get_all("Requires-Dist") or [])


@pytest.mark.timeout(600)
def test_one_version_from_git_for_all(dist: Path) -> None:
    versions = {metadata(wheel_of(dist, name))["Version"] for name in DISTS}
    assert len(versions) == 1
    (version,) = versions
    head = subprocess.run(
        ["git", "rev-parse", "--short=9", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    assert f"+g{head}" in version  # the commit it was built from
    sdists = sorted(p.name for p in dist.glob("*.tar.gz"))
    assert sdists == sorted(f"{name}-{version}.tar.gz" for name in DISTS)


@pytest.mark.timeout(600)
def test_metadata_and_extras(dist: Path) -> None:
    client = requires(wheel_of(dist, "labpower_client"))
    assert [r for r in client if "extra ==" not in r] == ["anyio<5,>=4.11"]
    assert all(
        ("jumpstarter" in r and "extra == 'jumpstarter'" in r)
        or (r.startswith("prometheus-client") and "extra == 'web'" in r)
        for r in client
        if "extra ==" in r
    )
    backends = requires(wheel_of(dist, "labpower_backends"))
    for extra, lib in (("serial", "pyserial"), ("hid", "hidapi"), ("usb", "pyusb")):
        assert any(r.startswith(lib) and f"extra == '{extra}'" in r for r in backends), extra
    daemon = requires(wheel_of(dist, "labpower_daemon"))
    assert {r.split(";")[0].split("<")[0].split(">")[0] for r in daemon if "extra" not in r} == {
        "anyio",
        "labpower-backends",
        "labpower-client",
    }
    assert any(r.startswith("systemd-python") and "extra == 'systemd'" in r for r in daemon)
    for name in DISTS:
        meta = metadata(wheel_of(dist, name))
        assert meta["Requires-Python"] == ">=3.11"
        assert meta["Summary"]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_client_installs_alone(dist: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run(["uv", "venv", "--quiet", "--python", sys.executable, str(venv)], check=True)
    python = str(venv / "bin" / "python")
    subprocess.run(
        [
            "uv",
            "pip",
            "install",
            "--quiet",
            "--python",
            python,
            str(wheel_of(dist, "labpower_client")),
        ],
        check=True,
        timeout=300,
    )
    listed = subprocess.run(
        ["uv", "pip", "list", "--python", python, "--format", "freeze"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    installed = {line.split("==")[0].lower() for line in listed.split()}
    # the client and anyio with anyio's own small dependencies: no hardware library, no
    # systemd, no Jumpstarter, neither of the other two distributions
    assert {"labpower-client", "anyio"} <= installed
    assert installed <= {"labpower-client", "anyio", "idna", "sniffio", "typing-extensions"}
    probe = subprocess.run(
        [
            python,
            "-c",
            "import labpower.client, sys; print(sorted(m for m in sys.modules "
            "if m.startswith('labpower')))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "labpower.daemon" not in probe.stdout
    assert "labpower.backends" not in probe.stdout
