"""Labs of many hosts: ssh:// addresses through a real sshd, the bridge, and the inventory."""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path

import anyio
import pytest
from labpower.client import AsyncClient, Client, DaemonUnreachable, LabpowerError, TargetNotFound
from labpower.client.lab import Lab
from labpower.client.transport import Address
from labpower.client.wire import Call, Decoder, encode

from tests.conftest import StartDaemon
from tests.integrations.conftest import HOST1, HOST2, LABPOWER, Sshd, run_labpower


def _inventory(path: Path, sshd: Sshd, host1: str, host2: str) -> Path:
    path.write_text(
        f'[hosts.host1]\nsocket = "{sshd.address(host1)}"\n'
        f'[hosts.host2]\nsocket = "{sshd.address(host2)}"\n'
    )
    return path


def test_address_forms() -> None:
    a = Address.parse("ssh://lab@bench2.example.org:2222/run/labpower/labpower.sock")
    assert (a.user, a.host, a.port, a.path) == (
        "lab",
        "bench2.example.org",
        2222,
        "/run/labpower/labpower.sock",
    )
    assert str(a) == "ssh://lab@bench2.example.org:2222/run/labpower/labpower.sock"
    cmd = Address.parse("ssh://bench2").ssh_command()
    assert cmd[-2:] == ["bench2", "labpower bridge"]
    assert Address.parse("/tmp/x.sock") == Address("/tmp/x.sock")
    with pytest.raises(ValueError, match="ssh://"):
        Address.parse("tcp://bench2:1234")


def test_client_over_ssh(
    ssh_env: Sshd, start_daemon: StartDaemon, caplog: pytest.LogCaptureFixture
) -> None:
    host2 = start_daemon(HOST2)
    with Client(ssh_env.address(host2.socket_path), timeout=20) as lab:
        assert [t.name for t in lab.targets()] == ["dut7", "dut8"]
        with caplog.at_level(logging.INFO, "labpower.remote"), lab.log_stream(["dut7"]):
            assert lab.on("dut7").state == "on"
        assert "power on" in [r.getMessage() for r in caplog.records]
        assert [r.voltage for r in lab.read("dut7", count=2, interval=0.05)] == [0.0, 5.0]
    with host2.client() as local:
        assert local.get("dut7").state == "on"


@pytest.mark.anyio
async def test_async_client_over_ssh(ssh_env: Sshd, start_daemon: StartDaemon) -> None:
    host2 = start_daemon(HOST2)
    async with AsyncClient(ssh_env.address(host2.socket_path), timeout=20) as lab:
        assert (await lab.on("dut8")).state == "on"
        with anyio.fail_after(20):
            readings = [r async for r in lab.read("dut8", count=2, interval=0.05)]
        assert [r.current for r in readings] == [0.0, 2.0]
    with host2.client() as local:
        assert local.get("dut8").state == "on"
    # an error leaving the block is itself, not wrapped in an ExceptionGroup
    with pytest.raises(TargetNotFound):
        async with AsyncClient(ssh_env.address(host2.socket_path), timeout=20) as lab:
            await lab.on("dut99")


def test_ssh_failures_say_why(ssh_env: Sshd, tmp_path: Path) -> None:
    missing = str(tmp_path / "no-daemon.sock")
    with Client(ssh_env.address(missing), timeout=20) as lab, pytest.raises(DaemonUnreachable) as e:
        lab.targets()
    # the bridge on the far side could not reach the daemon, and said so through ssh
    assert missing in str(e.value)
    assert "No such file" in str(e.value)
    refused = Client(f"ssh://nobody-here@127.0.0.1:{ssh_env.port}/x.sock", timeout=20)
    with pytest.raises(DaemonUnreachable, match="status 255"):
        refused.targets()
    refused.close()


def test_a_login_banner_is_named_and_the_next_call_reconnects(
    ssh_env: Sshd, start_daemon: StartDaemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    host2 = start_daemon(HOST2)
    banner = Path(host2.socket_path).parent / "banner-once"
    # a login script that greets once: the first connection gets its text before the bridge
    script = (
        f'if [ ! -e {banner} ]; then : > {banner}; printf "Welcome to bench2\\n"; fi; exec "$@"'
    )
    monkeypatch.setenv("LABPOWER_REMOTE_COMMAND", f"sh -c '{script}' sh {' '.join(LABPOWER)}")
    with Client(ssh_env.address(host2.socket_path), timeout=20) as lab:
        with pytest.raises(LabpowerError) as info:
            lab.targets()
        assert "the remote shell printed 'Welcome to bench2\\n' before the bridge started" in str(
            info.value
        )
        assert [t.name for t in lab.targets()] == ["dut7", "dut8"]


def test_lab_finds_each_targets_host(
    ssh_env: Sshd, start_daemon: StartDaemon, tmp_path: Path
) -> None:
    host1, host2 = start_daemon(HOST1), start_daemon(HOST2)
    inventory = _inventory(tmp_path / "lab.toml", ssh_env, host1.socket_path, host2.socket_path)
    with Lab(inventory, timeout=20) as lab:
        assert lab.target("dut7").on().state == "on"
        assert lab.locate("host1/dut2") == ("host1", "dut2")
        with pytest.raises(TargetNotFound, match="no host of the lab"):
            lab.target("dut99")
        survey = list(lab.survey())
        assert [(h.host.name, [t.name for t in h.targets]) for h in survey] == [
            ("host1", ["dut1", "dut2"]),
            ("host2", ["dut7", "dut8"]),
        ]
    with host1.client() as one, host2.client() as two:
        assert two.get("dut7").state == "on"
        assert one.get("dut1").state != "on"


def test_cli_over_inventory_with_a_host_down(
    sshd: Sshd, start_daemon: StartDaemon, tmp_path: Path
) -> None:
    host1, host2 = start_daemon(HOST1), start_daemon(HOST2)
    inventory = _inventory(tmp_path / "lab.toml", sshd, host1.socket_path, host2.socket_path)
    env = {**sshd.env, "LABPOWER_LAB": str(inventory), "HOME": str(tmp_path)}

    on = run_labpower("on", "dut7", env=env)
    assert (on.returncode, on.stdout) == (0, "dut7: on (verified)\n"), on.stderr
    with host2.client() as two:
        assert two.get("dut7").state == "on"

    host1.stop()
    listing = run_labpower("list", env=env)
    # a host that does not answer is shown, and fails the command: exit status 1
    assert listing.returncode == 1
    lines = listing.stdout.splitlines()
    assert lines[0].split()[:3] == ["HOST", "TARGET", "STATE"]
    assert lines[1].split()[:3] == ["host1", "-", "unreachable"]
    assert [line.split()[:3] for line in lines[2:]] == [
        ["host2", "dut7", "on"],
        ["host2", "dut8", "off"],
    ]
    assert "host host1" in listing.stderr
    assert "not reachable" in listing.stderr

    # the unreachable host does not stand in the way of the other one's targets
    off = run_labpower("off", "dut8", "dut1", env=env)
    assert off.returncode == 1
    assert off.stdout == "dut8: off (verified)\n"
    assert "off dut1: no host of the lab has a target named 'dut1'" in off.stderr
    assert "not reachable: host1" in off.stderr


def test_lab_file_errors_name_file_and_key(tmp_path: Path) -> None:
    bad = tmp_path / "lab.toml"
    bad.write_text('[hosts.h1]\nsocket = "tcp://x"\n')
    result = run_labpower("--lab", str(bad), "list")
    assert result.returncode == 1
    assert f"{bad}: hosts.h1:" in result.stderr
    bad.write_text('[hosts.h1]\nsockett = "/x"\n')
    result = run_labpower("--lab", str(bad), "list")
    assert "hosts.h1.sockett: unknown key" in result.stderr


def test_bridge_relays_and_ends_with_stdin(start_daemon: StartDaemon) -> None:
    daemon = start_daemon(HOST1)
    bridge = subprocess.Popen(
        [*LABPOWER, "bridge", "--socket", daemon.socket_path],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert bridge.stdin is not None
    assert bridge.stdout is not None
    bridge.stdin.write(encode(Call("io.labpower.Power.Get", {"target": "dut2"})))
    bridge.stdin.flush()
    decoder = Decoder()
    replies: list[dict[str, object]] = []
    while not replies:
        data = os.read(bridge.stdout.fileno(), 65536)
        assert data, "the bridge closed before the reply"
        replies.extend(decoder.feed(data))
    assert replies[0]["parameters"]["target"]["name"] == "dut2"  # type: ignore[index]
    bridge.stdin.close()
    assert bridge.wait(20) == 0
    bridge.stdout.close()
    assert bridge.stderr is not None
    bridge.stderr.close()


def test_bridge_without_daemon_fails(tmp_path: Path) -> None:
    result = run_labpower("bridge", "--socket", str(tmp_path / "none.sock"))
    assert result.returncode == 1
    assert "none.sock" in result.stderr
    result = run_labpower("bridge", "--socket", "ssh://elsewhere/x.sock")
    assert result.returncode == 2
