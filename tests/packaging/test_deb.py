"""The Debian package, for real: built twice with packaging/build-deb.sh (the second time
after one more commit, as a rebuild), then installed with apt in a fresh Debian 12 root
booted with systemd as PID 1 (systemd-nspawn), used as a member of group labpower, upgraded
while a target is on, removed and purged. deb_check.py does the work inside the container.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ..nspawn import machine_name
from .conftest import HERE, REPO, build_deb, deb_field, debian_root, version_gt

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def repo_with_one_more_commit(dest: Path) -> Path:
    """A copy of this work tree (uncommitted changes included) and its git history, with
    one more commit: what the tree is after the next change lands."""
    files = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, files):
        source = REPO / name.decode()
        if source.is_file():
            (dest / name.decode()).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name.decode())
    # the history up to this tree's commit (a clone, not a copy of .git: in a `git worktree`
    # .git is a file pointing elsewhere)
    head = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    subprocess.run(
        ["git", "clone", "-q", "--shared", "--no-checkout", str(REPO), str(dest / "clone")],
        check=True,
    )
    (dest / "clone" / ".git").rename(dest / ".git")
    (dest / "clone").rmdir()
    git = ["git", "-C", str(dest), "-c", "user.name=test", "-c", "user.email=test@invalid"]
    subprocess.run([*git, "reset", "-q", head], check=True)
    subprocess.run([*git, "add", "-A"], check=True, capture_output=True)
    subprocess.run([*git, "commit", "--allow-empty", "-qm", "rebuild"], check=True)
    return dest


@pytest.fixture(scope="module")
def debs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("debs")
    first = build_deb(REPO, tmp / "v1")
    second = build_deb(repo_with_one_more_commit(tmp_path_factory.mktemp("tree")), tmp / "v2")
    return {"dir": tmp, "v1": first, "v2": second}


@pytest.fixture(scope="module")
def lab_host(debs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = debian_root()
    out = tmp_path_factory.mktemp("out")
    with machine_name() as machine:
        boot = subprocess.run(
            [
                "systemd-nspawn",
                "--quiet",
                f"--directory={root}",
                "--volatile=overlay",
                "--register=no",
                f"--machine={machine}",
                "--keep-unit",
                "--private-network",
                f"--bind-ro={debs['dir']}:/debs",
                f"--bind-ro={HERE}:/test",
                f"--bind={out}:/out",
                "--boot",
                "--",
                "systemd.unit=labpower-deb-check.target",
                "systemd.firstboot=no",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    result_file = out / "result.json"
    assert result_file.exists(), f"the checker did not report:\n{boot.stdout}\n{boot.stderr}"
    result: dict[str, Any] = json.loads(result_file.read_text())
    assert "checker_error" not in result, result["checker_error"]
    return result


def test_a_rebuild_after_a_commit_has_a_higher_version(debs: dict[str, Path]) -> None:
    v1, v2 = deb_field(debs["v1"], "Version"), deb_field(debs["v2"], "Version")
    assert version_gt(v2, v1), (v1, v2)


def test_apt_installs_the_package_offline_with_nothing_to_download(
    lab_host: dict[str, Any],
) -> None:
    assert lab_host["install"]["rc"] == 0, lab_host["install"]
    assert lab_host["installed_v1"].endswith(" installed")
    assert lab_host["commands"] == {
        "labpowerd": 0,
        "labpower": 0,
        "labpower-sim": 0,
        "labpower-discover": 0,
    }
    assert {"man8/labpowerd.8.gz", "man1/labpower.1.gz", "man5/labpowerd.toml.5.gz"} <= set(
        lab_host["man"]
    )
    assert lab_host["udev_rules"], "the udev rules are installed"


def test_install_starts_the_socket_only(lab_host: dict[str, Any]) -> None:
    socket, service = lab_host["socket_after_install"], lab_host["service_after_install"]
    assert (socket["ActiveState"], socket["UnitFileState"]) == ("active", "enabled")
    assert (service["ActiveState"], service["UnitFileState"]) == ("inactive", "disabled")
    sock = lab_host["socket_file"]
    assert sock["socket"]
    assert sock["mode"] == 0o660
    assert sock["gid"] == int(lab_host["labpower_group"].split(":")[2])


def test_install_creates_the_user_and_a_config_that_switches_nothing(
    lab_host: dict[str, Any],
) -> None:
    assert lab_host["labpower_user"].startswith("labpower:")
    check = lab_host["shipped_config_check"]
    assert check["rc"] == 0, check
    assert "0 devices, 0 targets" in check["stdout"]


def test_a_member_of_group_labpower_switches_a_target(lab_host: dict[str, Any]) -> None:
    on = lab_host["alice_on"]
    assert on["rc"] == 0, on
    assert on["json"][0]["name"] == "dut1"
    assert on["json"][0]["state"] == "on"
    assert lab_host["service_after_first_call"]["ActiveState"] == "active"
    assert lab_host["state_file_after_on"] is not None, "the state is persisted"
    bob = lab_host["bob_on"]
    assert bob["rc"] == 1, bob
    assert "ermission denied" in bob["stderr"], bob


def test_the_network_drop_in_ships_unused_and_opens_the_network_when_installed(
    lab_host: dict[str, Any],
) -> None:
    assert lab_host["drop_in_shipped"]["mode"] == 0o644
    assert lab_host["drop_in_active_after_install"] is False
    # as installed: AF_UNIX only, and the daemon says why a network PDU is unavailable
    assert lab_host["families_as_installed"] == "AF_UNIX"
    forbidden = lab_host["plug_forbidden"]
    assert forbidden["rc"] != 0, forbidden
    assert "network is forbidden to labpowerd" in forbidden["stderr"], forbidden
    # README.Debian's steps: the same PDU switches
    assert lab_host["drop_in_install"]["rc"] == 0, lab_host["drop_in_install"]
    assert set(lab_host["families_with_drop_in"].split()) == {"AF_UNIX", "AF_INET", "AF_INET6"}
    on = lab_host["plug_on"]
    assert on["rc"] == 0, on
    assert (on["json"][0]["name"], on["json"][0]["state"]) == ("plug", "on")


def test_upgrade_keeps_the_state_and_switches_nothing(lab_host: dict[str, Any]) -> None:
    assert lab_host["upgrade"]["rc"] == 0, lab_host["upgrade"]
    assert lab_host["installed_v2"] != lab_host["installed_v1"]
    assert lab_host["installed_v2"].endswith(" installed")
    before = {t["name"]: t for t in lab_host["status_before_upgrade"]["json"]}
    after = {t["name"]: t for t in lab_host["status_after_upgrade"]["json"]}
    assert before["dut1"]["state"] == after["dut1"]["state"] == "on"
    assert after["dut1"]["since"] == before["dut1"]["since"], "the same switch, not a new one"
    assert after["dut2"]["state"] == before["dut2"]["state"]
    # the daemon was restarted into the new code (it was running), its socket was not
    old, new = lab_host["service_after_install"], lab_host["service_after_upgrade"]
    assert new["ActiveState"] == "active"
    assert new["MainPID"] != lab_host["service_after_first_call"]["MainPID"] != old["MainPID"]
    assert (
        lab_host["socket_after_upgrade"]["ActiveEnterTimestampMonotonic"]
        == lab_host["socket_before_upgrade"]["ActiveEnterTimestampMonotonic"]
    )
    # the admin's config survives, without a conffile prompt
    assert 'backend = "mock"' in lab_host["config_after_upgrade"]


def test_nothing_toggles_across_the_upgrade(lab_host: dict[str, Any]) -> None:
    journal = lab_host["journal_across_upgrade"]
    assert journal, "the restarted daemon logged its start"
    switched = [
        e
        for e in journal
        if e.get("LABPOWER_OP") in ("on", "off", "cycle")
        or e.get("MESSAGE") in ("power on", "power off")
    ]
    assert switched == []
    history = lab_host["history_after_upgrade"]
    assert history["rc"] == 0, history
    # History (from the journal) across the restart: alice's one switch (its request and its
    # result), then the old daemon stopping and the new one serving, and no switch after
    entries = history["json"]
    stopped = next(i for i, e in enumerate(entries) if e["message"] == "received SIGTERM")
    before, after = entries[:stopped], entries[stopped:]
    assert {(e.get("target"), e.get("op")) for e in before if "op" in e} == {("dut1", "on")}
    assert [e for e in after if "op" in e] == [], entries
    assert after[-1]["message"].startswith("serving on"), "the new daemon's start is logged"


def test_remove_stops_the_daemon_and_keeps_state_and_config(lab_host: dict[str, Any]) -> None:
    assert lab_host["remove"]["rc"] == 0, lab_host["remove"]
    after = lab_host["after_remove"]
    assert after["socket"]["ActiveState"] == "inactive"
    assert after["service"]["ActiveState"] == "inactive"
    assert after["labpowerd"] is None
    assert after["venv"] is None
    assert after["state_file"] is not None
    assert after["config"] is not None


def test_purge_removes_state_and_config(lab_host: dict[str, Any]) -> None:
    assert lab_host["purge"]["rc"] == 0, lab_host["purge"]
    after = lab_host["after_purge"]
    assert after["state_dir"] is None
    assert after["config_dir"] is None
    assert after["enabled_link"] is None
    assert not after["status"].endswith(" installed")


def test_lintian_finds_no_errors_or_warnings(debs: dict[str, Path]) -> None:
    (changes,) = debs["v1"].parent.glob("*.changes")
    run = subprocess.run(
        ["lintian", "--fail-on", "error,warning", "--display-level", ">=warning", str(changes)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
