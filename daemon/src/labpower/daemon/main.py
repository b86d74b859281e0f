"""``labpowerd``: the command line of the daemon."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

import anyio

from labpower.daemon.config import (
    Config,
    ConfigError,
    default_config_path,
    default_socket_path,
    load,
)

log = logging.getLogger("labpower.daemon")


class _StderrFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        where = getattr(record, "target", None) or getattr(record, "device", None)
        prefix = f"{record.levelname.lower()}: {where}: " if where else \
            f"{record.levelname.lower()}: "
        text = prefix + record.getMessage()
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def setup_logging(level: str) -> None:
    # The daemon never logs caller file/line or thread names: skip collecting them per record.
    logging._srcfile = None  # documented in the logging HOWTO, "Optimization"
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_StderrFormatter())
    root = logging.getLogger("labpower")
    root.addHandler(handler)
    root.setLevel(level.upper())


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="labpowerd",
        description="Serve the power of relay-switched lab devices over a varlink socket.",
    )
    ap.add_argument("--config", metavar="FILE", default=None,
                    help=f"configuration file (default: {default_config_path()})")
    ap.add_argument("--socket", metavar="PATH", default=None,
                    help="Unix socket to listen on (default: the config's daemon.socket, "
                         f"else {default_socket_path()})")
    ap.add_argument("--check-config", metavar="FILE", default=None,
                    help="validate FILE, print what is wrong, exit 0 if it is fine")
    ap.add_argument("--log-level", choices=("debug", "info", "warning", "error"),
                    default=None, help="override daemon.log_level")
    ap.add_argument("--async-backend", choices=("asyncio", "trio"), default="asyncio",
                    help=argparse.SUPPRESS)
    return ap


async def _run(config: Config, socket_path: str) -> None:
    from labpower.daemon.daemon import Daemon

    await Daemon(config, socket_path).run()


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.check_config is not None:
        try:
            cfg = load(args.check_config)
        except ConfigError as exc:
            print(f"labpowerd: {exc}", file=sys.stderr)
            return 1
        print(f"{cfg.path}: ok ({len(cfg.devices)} devices, {len(cfg.targets)} targets)")
        return 0

    path = args.config or default_config_path()
    try:
        cfg = load(path)
    except ConfigError as exc:
        print(f"labpowerd: {exc}", file=sys.stderr)
        return 1
    setup_logging(args.log_level or cfg.daemon.log_level)
    socket_path = args.socket or cfg.daemon.socket or default_socket_path()

    from labpower.daemon.daemon import StartupError

    try:
        anyio.run(_run, cfg, socket_path, backend=args.async_backend)
    except StartupError as exc:
        log.error("cannot start: %s", exc)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
