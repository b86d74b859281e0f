"""Run a command next to a real, private systemd-journald.

Usage (as root): ``unshare --mount --propagation private -- python journald_ns.py DIR -- CMD..``

In this mount namespace only: a tmpfs on /run, journald's sockets in /run/systemd/journal,
its volatile journal files in DIR/log (bound on /run/log, so they outlive the namespace and
``journalctl -D DIR/log/journal`` reads them afterwards), and a journald.conf that stores
everything and forwards nothing. The command runs with $JOURNALD_PID set; its exit status is
this script's. journald is stopped with SIGTERM at the end, which flushes what it received.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

JOURNALD = "/lib/systemd/systemd-journald"
SOCKET = "/run/systemd/journal/socket"
CONF = """\
[Journal]
Storage=volatile
ReadKMsg=no
RateLimitIntervalSec=0
RateLimitBurst=0
ForwardToSyslog=no
ForwardToKMsg=no
ForwardToConsole=no
ForwardToWall=no
"""


def mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True)


def main(argv: list[str]) -> int:
    split = argv.index("--")
    workdir, command = Path(argv[1]).resolve(), argv[split + 1 :]
    logdir = workdir / "log"
    logdir.mkdir(parents=True, exist_ok=True)
    conf = workdir / "journald.conf"
    conf.write_text(CONF)
    mount("-t", "tmpfs", "-o", "mode=0755", "tmpfs", "/run")
    os.makedirs("/run/systemd/journal")
    os.makedirs("/run/log")
    mount("--bind", str(logdir), "/run/log")
    mount("--bind", str(conf), "/etc/systemd/journald.conf")
    machine_id = Path("/etc/machine-id")
    if not machine_id.exists() or len(machine_id.read_text().strip()) != 32:
        fake = workdir / "machine-id"
        fake.write_text(uuid.uuid4().hex + "\n")
        mount("--bind", str(fake), str(machine_id))
    env = {**os.environ, "SYSTEMD_LOG_TARGET": "console", "SYSTEMD_LOG_LEVEL": "warning"}
    env.pop("NOTIFY_SOCKET", None)
    with open(workdir / "journald.log", "ab") as out:
        journald = subprocess.Popen(
            [JOURNALD], env=env, stdout=out, stderr=out, stdin=subprocess.DEVNULL
        )
    try:
        deadline = time.monotonic() + 10
        while not os.path.exists(SOCKET):  # journald has no readiness signal outside systemd
            if journald.poll() is not None or time.monotonic() > deadline:
                print(
                    f"journald did not start: {(workdir / 'journald.log').read_text()}",
                    file=sys.stderr,
                )
                return 125
            time.sleep(0.005)
        return subprocess.run(
            command, env={**os.environ, "JOURNALD_PID": str(journald.pid)}, check=False
        ).returncode
    finally:
        if journald.poll() is None:
            os.kill(journald.pid, signal.SIGCONT)  # a test may have stopped it
            journald.terminate()
            journald.wait(10)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
