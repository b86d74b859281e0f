"""Both clients against a varlink server nobody here wrote: the reference ``varlink`` package
from PyPI, serving a small ``io.labpower.Power`` (Get, and Read with "more") on a real Unix
socket. Bugs 1 and 2 of issue 18 are reproduced here: a call with "more" leaving replies on
the connection, and a broken reply wedging the client for good.

The package's source has an invalid escape sequence, which compiles with a
DeprecationWarning (an error under ``-W error``): it is imported with warnings silenced.
"""

from __future__ import annotations

import signal
import socket
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from labpower.client import AsyncClient, Client, LabpowerError, TargetNotFound
from labpower.client.errors import LocalProtocolError, RemoteProtocolError
from labpower.client.wire import Call

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import varlink

IDL = """\
interface io.labpower.Power

type Target (
  name: string, device: string, channel: int, state: (on, off, unknown),
  verified: bool, available: bool, since: ?string
)
type Reading (voltage: float, current: float, apparent_power: float)

method Get(target: string) -> (target: Target)
method Read(target: string, interval: ?float, count: ?int) -> (reading: Reading)
method Sleep(seconds: float) -> ()

error TargetNotFound (target: string)
"""


def _target(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "device": "bench",
        "channel": 1,
        "state": "off",
        "verified": True,
        "available": True,
    }


class Power:
    """The reference server's implementation of the interface (names as it requires)."""

    def Get(self, target: str) -> dict[str, Any]:
        if target != "dut1":
            raise varlink.VarlinkError(
                {"error": "io.labpower.Power.TargetNotFound", "parameters": {"target": target}}
            )
        return {"target": _target(target)}

    def Sleep(self, seconds: float) -> dict[str, Any]:
        time.sleep(seconds)
        return {}

    def Read(
        self, target: str, interval: float | None, count: int | None, _more: bool = False
    ) -> Iterator[dict[str, Any]]:
        total = (count or 3) if _more else 1
        for i in range(total):
            reading = {"voltage": float(i), "current": 0.5, "apparent_power": 0.0}
            yield {"reading": reading, "_continues": i + 1 < total}


@pytest.fixture
def reference_server(tmp_path: Path) -> Iterator[str]:
    (tmp_path / "io.labpower.Power.varlink").write_text(IDL)
    service = varlink.Service(vendor="test", product="reference", interface_dir=str(tmp_path))
    service.interface("io.labpower.Power")(Power)

    class Handler(varlink.RequestHandler):  # type: ignore[misc]  # untyped package
        pass

    Handler.service = service
    path = str(tmp_path / "reference.sock")
    server = varlink.ThreadingServer("unix:" + path, Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield path
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class BannerProxy:
    """Relays connections to ``upstream``; the first connection's reply stream starts with
    a line of text, as a login shell's banner would on an ssh:// bridge."""

    def __init__(self, path: str, upstream: str, banner: bytes) -> None:
        self.upstream = upstream
        self.banner = banner
        self.connections = 0
        self.path = path
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(8)
        self.sockets: list[socket.socket] = []
        self.threads = [threading.Thread(target=self._accept)]
        self.threads[0].start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            up = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sockets += [conn, up]
            up.connect(self.upstream)
            if self.connections == 0:
                conn.sendall(self.banner)
            self.connections += 1
            for a, b in ((conn, up), (up, conn)):
                thread = threading.Thread(target=self._pump, args=(a, b))
                self.threads.append(thread)
                thread.start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self) -> None:
        self.listener.shutdown(socket.SHUT_RDWR)
        for sock in self.sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in self.threads:
            thread.join()
        for sock in [self.listener, *self.sockets]:
            sock.close()


@pytest.fixture
def banner_proxy(tmp_path: Path, reference_server: str) -> Iterator[BannerProxy]:
    proxy = BannerProxy(str(tmp_path / "proxy.sock"), reference_server, b"Welcome to bench2\n")
    try:
        yield proxy
    finally:
        proxy.close()


READ_MORE = Call("io.labpower.Power.Read", {"target": "dut1", "count": 3}, more=True)
GET = Call("io.labpower.Power.Get", {"target": "dut1"})


def test_client_against_the_reference_server(reference_server: str) -> None:
    with Client(reference_server, timeout=10) as lab:
        assert lab.get("dut1").state == "off"
        assert [r.voltage for r in lab.read("dut1", count=3)] == [0.0, 1.0, 2.0]
        assert [r.voltage for r in lab.read("dut1")] == [0.0]
        assert lab.call(GET)["target"]["name"] == "dut1"


def test_bug_1_a_call_with_more_cannot_leave_replies_for_the_next_call(
    reference_server: str,
) -> None:
    with Client(reference_server, timeout=10) as lab:
        with pytest.raises(LocalProtocolError, match="use stream"):
            lab.call(READ_MORE)
        # the next call gets its own answer, not the second Read reply
        assert "target" in lab.call(GET)
        assert [r["reading"]["voltage"] for r in lab.stream(READ_MORE)] == [0.0, 1.0, 2.0]
        assert "target" in lab.call(GET)


def test_bug_2_a_broken_reply_fails_one_call_and_the_next_reconnects(
    banner_proxy: BannerProxy,
) -> None:
    with Client(banner_proxy.path, timeout=10) as lab:
        with pytest.raises(RemoteProtocolError) as info:
            lab.get("dut1")
        assert isinstance(info.value, LabpowerError)
        # the message says what came in
        assert "Welcome to bench2" in str(info.value)
        assert lab.get("dut1").name == "dut1"
    assert banner_proxy.connections == 2


@pytest.mark.anyio
async def test_async_client_against_the_reference_server(reference_server: str) -> None:
    async with AsyncClient(reference_server, timeout=10) as lab:
        assert (await lab.get("dut1")).name == "dut1"
        with anyio.fail_after(10):
            assert [r.voltage async for r in lab.read("dut1", count=3)] == [0.0, 1.0, 2.0]
        with pytest.raises(LocalProtocolError, match="use stream"):
            await lab.call(READ_MORE)
        assert "target" in await lab.call(GET)


@pytest.mark.anyio
async def test_async_bug_2_a_broken_reply_fails_one_call_and_the_next_reconnects(
    banner_proxy: BannerProxy,
) -> None:
    async with AsyncClient(banner_proxy.path, timeout=10) as lab:
        with pytest.raises(RemoteProtocolError, match="Welcome to bench2"):
            await lab.get("dut1")
        assert (await lab.get("dut1")).name == "dut1"


SLEEP = Call("io.labpower.Power.Sleep", {"seconds": 0.5})


class Interrupted(Exception):
    pass


def _interrupt(signum: int, frame: object) -> None:
    raise Interrupted


def test_an_interrupted_call_leaves_no_reply_for_the_next(reference_server: str) -> None:
    # Ctrl-C (here: an alarm) while a call waits: its reply is still on the way, and must
    # not be taken for the answer to the next call on the same client
    with Client(reference_server, timeout=10) as lab:
        previous = signal.signal(signal.SIGALRM, _interrupt)
        try:
            signal.setitimer(signal.ITIMER_REAL, 0.05)
            with pytest.raises(Interrupted):
                lab.call(SLEEP)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        assert lab.get("dut1").name == "dut1"


@pytest.mark.anyio
async def test_a_cancelled_async_call_leaves_no_reply_for_the_next(reference_server: str) -> None:
    async with AsyncClient(reference_server, timeout=10) as lab:
        with anyio.move_on_after(0.05) as scope:
            await lab.call(SLEEP)
        assert scope.cancelled_caught
        assert (await lab.get("dut1")).name == "dut1"


OPS = st.lists(
    st.one_of(
        st.tuples(st.just("get"), st.sampled_from(["dut1", "nope"])),
        st.tuples(st.just("read"), st.integers(min_value=1, max_value=4)),
        st.tuples(st.just("call-more"), st.just(0)),
        st.tuples(st.just("stream-early-exit"), st.integers(min_value=1, max_value=3)),
    ),
    min_size=1,
    max_size=12,
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=OPS)
def test_random_sequences_against_the_reference_server(
    reference_server: str, ops: list[tuple[str, int | str]]
) -> None:
    # Whatever the order of one-reply calls, streams, refused calls and streams left early,
    # each call gets its own answer from a server nobody here wrote.
    with Client(reference_server, timeout=10) as lab:
        for kind, arg in ops:
            if kind == "get":
                if arg == "dut1":
                    assert lab.get("dut1").name == "dut1"
                else:
                    with pytest.raises(TargetNotFound):
                        lab.get(str(arg))
            elif kind == "read":
                count = int(arg)
                voltages = [r.voltage for r in lab.read("dut1", count=count)]
                assert voltages == [float(i) for i in range(count)]
            elif kind == "call-more":
                with pytest.raises(LocalProtocolError):
                    lab.call(READ_MORE)
            else:
                readings = lab.read("dut1", count=3)
                for _ in range(int(arg)):
                    next(readings)
                readings.close()  # left early: its connection is closed, not reused
