"""labpower-web's HTTP surface: read-only, bounded, and every answer carries headers that
keep the page to its own files."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from labpower.daemon.testing import DaemonProcess

from .conftest import StartWeb, WebProcess


@pytest.fixture(scope="module")
def web(
    shared_daemon: DaemonProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WebProcess]:
    """One labpower-web for the module: these tests leave nothing behind."""
    service = WebProcess(["--socket", shared_daemon.socket_path], tmp_path_factory.mktemp("web"))
    yield service
    assert service.stop() == 0, service.stderr()


def raw(web: WebProcess, data: bytes) -> bytes:
    """What the service answers to ``data`` sent as is (it closes after one answer)."""
    host, port = web.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(data)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    return answer


def test_the_page_and_its_files_come_with_a_strict_content_security_policy(
    web: WebProcess,
) -> None:
    for path, kind in (
        ("/", "text/html"),
        ("/app.js", "text/javascript"),
        ("/style.css", "text/css"),
        ("/api/state", "application/json"),
    ):
        status, headers, body = web.get(path)
        assert status == 200, path
        assert headers["Content-Type"].startswith(kind)
        assert "script-src 'self'" in headers["Content-Security-Policy"]
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert body
    status, _, _ = web.get("/nothing-here")
    assert status == 404


def test_it_switches_nothing_and_refuses_what_is_not_get_or_head(
    shared_daemon: DaemonProcess, web: WebProcess
) -> None:
    with shared_daemon.client() as lab:
        before = [(t.name, t.state, t.since) for t in lab.targets()]
    for method in ("POST", "PUT", "DELETE"):
        answer = raw(web, f"{method} /api/state HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
        assert answer.startswith(b"HTTP/1.1 405 "), answer[:100]
    head = raw(web, b"HEAD / HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert head.endswith(b"\r\n\r\n")  # no body
    for path in ("/api/state", "/api/readings", "/metrics"):
        assert web.get(path)[0] == 200
    with shared_daemon.client() as lab:
        assert [(t.name, t.state, t.since) for t in lab.targets()] == before
        assert not [e for e in lab.history() if (e.extra or {}).get("op") in ("on", "off")]


def test_an_oversized_or_garbled_request_is_refused(web: WebProcess) -> None:
    huge = b"GET / HTTP/1.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n"
    assert raw(web, huge).startswith(b"HTTP/1.1 431 ")
    assert raw(web, b"\x16\x03\x01 hello\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    # and it still serves
    assert web.get("/")[0] == 200


def test_a_request_for_another_host_name_is_refused_against_dns_rebinding(
    web: WebProcess, shared_daemon: DaemonProcess, start_web: StartWeb
) -> None:
    # a page on evil.example whose name now points at 127.0.0.1 asks for our state
    refused = raw(web, b"GET /api/state HTTP/1.1\r\nHost: evil.example:16422\r\n\r\n")
    assert refused.startswith(b"HTTP/1.1 421 ")
    assert b"targets" not in refused
    for host in (b"localhost:16422", b"127.0.0.1", b"[::1]:16422"):
        answer = raw(web, b"GET /api/state HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 200 "), host
    # a reverse proxy's public name, when given
    proxied = start_web(["--socket", shared_daemon.socket_path, "--allow-host", "Lab.Example.org"])
    answer = raw(proxied, b"GET /api/state HTTP/1.1\r\nHost: lab.example.org\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 ")
