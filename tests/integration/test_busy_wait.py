"""The client polls briefly for fast replies and stops polling while replies are slow."""

from __future__ import annotations

from labpower.client import Client
from labpower.daemon.testing import DaemonProcess

CONFIG = {
    "devices": {
        "fast": {"backend": "mock", "channels": 1},
        "slow": {"backend": "mock", "channels": 1, "delay": 0.01},
    },
    "targets": {
        "quick": {"device": "fast", "channel": 1},
        "lazy": {"device": "slow", "channel": 1},
    },
}


def test_slow_replies_back_the_polling_off() -> None:
    daemon = DaemonProcess(CONFIG)
    daemon.start()
    try:
        with Client(daemon.socket_path, busy_wait=0.001) as lab:
            assert lab.on("quick").state == "on"
            conn = lab._conn
            assert conn is not None
            assert conn._spin == 0.001
            # each slow reply (10 ms) misses the 1 ms poll: polling is skipped for 1, 2, 4...
            # calls, so it costs a few polls however many slow calls there are
            for _ in range(15):
                assert lab.on("lazy").state == "on"
            assert conn._backoff >= 8
        with Client(daemon.socket_path, busy_wait=0.001) as lab:
            # fast replies are caught by polling: the back-off stays at (or returns to) 1
            # (the first calls of a connection may miss on a busy machine: bounded)
            conn = lab._conn
            assert conn is not None
            caught = 0
            for _ in range(500):
                lab.get("quick")
                caught = caught + 1 if conn._backoff == 1 else 0
                if caught == 20:
                    break
            assert caught == 20
        with Client(daemon.socket_path, busy_wait=0) as lab:
            assert lab.off("quick").state == "off"
            assert lab._conn is not None
            assert lab._conn._spin == 0.0
    finally:
        daemon.cleanup()
