"""Leases and access control against a real labpowerd: the holder is visible in List/Get,
others get Locked naming the holder, a lease ends with its connection (a SIGKILLed holder
too), on Release and at its timeout, and its token lets another connection act under it.
Per-target allow_users / allow_groups are checked against the caller's kernel credentials:
callers run as other users in forked children (os.setuid), since only the kernel can say who
connected."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from labpower.client import Client, Locked, PermissionDenied
from labpower.daemon.testing import DaemonProcess

#: throwaway ids with no passwd entry: the daemon checks numbers, names resolve at load
ALICE, BOB, CAROL = 61001, 61002, 61003
LAB_GROUP = 61100
CONFIG = {
    "daemon": {"log_level": "info"},
    "devices": {"bench": {"backend": "mock", "channels": 4}},
    "targets": {
        "open": {"device": "bench", "channel": 1},
        "alices": {"device": "bench", "channel": 2, "allow_users": [ALICE]},
        "labs": {"device": "bench", "channel": 3, "allow_groups": [LAB_GROUP]},
    },
}


@pytest.fixture
def daemon() -> Iterator[DaemonProcess]:
    # its own directory right under /tmp (pytest's tmp_path is private to root): other users
    # must reach the socket, whose mode is the first gate, not the one tested here
    proc = DaemonProcess(CONFIG)
    try:
        proc.start()
        os.chmod(proc.directory, 0o755)
        os.chmod(proc.socket_path, 0o666)
        yield proc
        code = proc.stop()
        assert code == 0, proc.stderr()
    finally:
        proc.cleanup()


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Bounded poll, for what the daemon announces nowhere (a lease freed by a hang-up)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
    return True


def free(lab: Client, target: str) -> bool:
    return lab.get(target).lease is None


def test_lease_holder_is_visible_and_others_are_locked(daemon: DaemonProcess) -> None:
    with daemon.client(timeout=10.0) as holder, daemon.client(timeout=10.0) as other:
        held, token = holder.acquire("open", name="ci-job")
        assert token
        assert held.lease is not None
        assert held.lease.name == "ci-job"
        seen = {t.name: t for t in other.targets()}["open"].lease
        assert seen is not None
        assert (seen.uid, seen.pid, seen.name) == (os.getuid(), os.getpid(), "ci-job")
        assert other.get("open").lease == seen

        for switch in (other.on, other.off, lambda t: other.cycle(t, delay=0.0)):
            with pytest.raises(Locked) as caught:
                switch("open")
            assert caught.value.parameters["holder"]["name"] == "ci-job"
            assert "ci-job" in str(caught.value)
        assert holder.on("open").state == "on"  # the holder's own calls work
        with pytest.raises(Locked):
            other.release("open")  # a stranger cannot end it
        assert holder.release("open").lease is None
        assert other.off("open").state == "off"


def test_lease_ends_when_its_connection_closes(daemon: DaemonProcess) -> None:
    with daemon.client(timeout=10.0) as other:
        holder = daemon.client(timeout=10.0)
        holder.acquire("open")
        with pytest.raises(Locked):
            other.on("open")
        holder.close()
        assert wait_until(lambda: free(other, "open"))
        assert other.on("open").state == "on"


def test_crashed_lease_holder_frees_the_lease(daemon: DaemonProcess) -> None:
    script = (
        "import signal, sys\n"
        "from labpower.client import Client\n"
        "lab = Client(sys.argv[1]); lab.acquire('open', name='doomed')\n"
        "print('held', flush=True)\n"
        "signal.pause()\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", script, daemon.socket_path], stdout=subprocess.PIPE, text=True
    ) as child:
        try:
            assert child.stdout is not None
            assert child.stdout.readline() == "held\n"
            with daemon.client(timeout=10.0) as other:
                lease = other.get("open").lease
                assert lease is not None
                assert (lease.pid, lease.name) == (child.pid, "doomed")
                with pytest.raises(Locked):
                    other.on("open")
                child.send_signal(signal.SIGKILL)
                child.wait(10)
                assert wait_until(lambda: free(other, "open"))
                assert other.on("open").state == "on"
        finally:
            if child.poll() is None:
                child.kill()


def test_lease_timeout(daemon: DaemonProcess) -> None:
    with daemon.client(timeout=10.0) as holder, daemon.client(timeout=10.0) as other:
        held, _ = holder.acquire("open", timeout=0.3)
        assert held.lease is not None
        assert held.lease.expires is not None
        with pytest.raises(Locked):
            other.on("open")
        assert wait_until(lambda: free(other, "open"))
        assert other.on("open").state == "on"
        other.acquire("open")  # nobody's now: anyone may take it
        with pytest.raises(Locked):
            holder.on("open")


def test_token_lets_another_connection_act_under_the_lease(daemon: DaemonProcess) -> None:
    script = (
        "import json, sys\n"
        "from labpower.client import Client, Locked\n"
        "try:\n"
        "    print(Client(sys.argv[1]).on('open').state)\n"
        "except Locked:\n"
        "    print('Locked')\n"
    )
    with daemon.client(timeout=10.0) as holder:
        _, token = holder.acquire("open", name="parent")

        def child(env: dict[str, str]) -> str:
            out = subprocess.run(
                [sys.executable, "-c", script, daemon.socket_path],
                env={**os.environ, **env},
                capture_output=True,
                text=True,
                timeout=30,
                check=True,
            )
            return out.stdout.strip()

        assert child({"LABPOWER_LEASES": f"open={token}"}) == "on"
        assert child({"LABPOWER_LEASES": "open=not-the-token"}) == "Locked"
        assert child({}) == "Locked"
        assert holder.get("open").lease is not None  # still the parent's


# -- allow_users / allow_groups
def as_user(
    uid: int, gid: int, groups: list[int], path: str, op: str, target: str
) -> dict[str, Any]:
    """Run ``Client(path).<op>(target)`` in a forked child under these credentials;
    {"ok": state} or {"error": class name}, and the child's pid."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            os.close(read)
            os.setgroups(groups)
            os.setgid(gid)
            os.setuid(uid)
            try:
                result: dict[str, Any] = {"ok": getattr(Client(path), op)(target).state}
            except Exception as exc:
                result = {"error": type(exc).__name__, "detail": str(exc)}
            result["pid"] = os.getpid()
            os.write(write, json.dumps(result).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    return dict(json.loads(data))


def test_allow_users_and_groups(daemon: DaemonProcess) -> None:
    path = daemon.socket_path
    # by user
    assert as_user(ALICE, ALICE, [], path, "on", "alices")["ok"] == "on"
    refused = as_user(BOB, BOB, [], path, "on", "alices")
    assert refused["error"] == "PermissionDenied"
    # by group, primary or supplementary
    assert as_user(CAROL, CAROL, [LAB_GROUP], path, "on", "labs")["ok"] == "on"
    assert as_user(BOB, LAB_GROUP, [], path, "off", "labs")["ok"] == "off"
    assert as_user(ALICE, ALICE, [], path, "on", "labs")["error"] == "PermissionDenied"
    # leases are switching rights too; a target without lists is everybody's
    assert as_user(BOB, BOB, [], path, "acquire", "alices")["error"] == "PermissionDenied"
    assert as_user(BOB, BOB, [], path, "on", "open")["ok"] == "on"
    # reading follows switching by default (read = "allowed"; see test_reads_and_leases.py)
    assert as_user(BOB, BOB, [], path, "get", "alices")["error"] == "PermissionDenied"
    assert as_user(ALICE, ALICE, [], path, "get", "alices")["ok"] == "on"

    with daemon.client(timeout=10.0) as root:
        assert root.off("alices").state == "off"  # root may always
        refusals = [
            e for e in root.history(targets=["alices"], level="warning") if "refused" in e.message
        ]
    assert refusals, "refused calls are logged"
    first = refusals[0].extra or {}
    assert (first.get("client_uid"), first.get("client_pid")) == (BOB, refused["pid"])
    assert PermissionDenied.__name__ == refused["error"]
