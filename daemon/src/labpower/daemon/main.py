"""``labpowerd``: the command line of the daemon."""

from __future__ import annotations

import argparse
import ctypes
import logging
import sys
from collections.abc import Sequence

import anyio
from labpower.daemon import eventloop
from labpower.daemon.config import (
    Config,
    ConfigError,
    default_config_path,
    default_socket_path,
    load,
)
from labpower.daemon.journal import LogOutput, LogTarget, choose_target

log = logging.getLogger("labpower.daemon")


def setup_logging(level: str, target: LogTarget = "auto") -> LogOutput:
    """Send the daemon's records to journald (under systemd, or when asked) or to stderr
    (foreground, ``level: target: message`` lines). :returns: the handler installed."""
    # The daemon never logs caller file/line or thread names: skip collecting them per record.
    logging._srcfile = None  # documented in the logging HOWTO, "Optimization"
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    handler = LogOutput(choose_target(target))
    root = logging.getLogger("labpower")
    root.addHandler(handler)
    root.setLevel(level.upper())
    return handler


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="labpowerd",
        description="Serve the power of relay-switched lab devices over a varlink socket.",
    )
    ap.add_argument(
        "--config",
        metavar="FILE",
        default=None,
        help=f"configuration file (default: {default_config_path()})",
    )
    ap.add_argument(
        "--socket",
        metavar="PATH",
        default=None,
        help="Unix socket to listen on (default: the config's daemon.socket, "
        f"else {default_socket_path()})",
    )
    ap.add_argument(
        "--check-config",
        metavar="FILE",
        default=None,
        help="validate FILE, print what is wrong, exit 0 if it is fine",
    )
    ap.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        default=None,
        help="override daemon.log_level",
    )
    ap.add_argument(
        "--log-target",
        choices=("auto", "journal", "stderr"),
        default="auto",
        help="where logs go (default: the journal when systemd connected stderr "
        "to it, else stderr)",
    )
    ap.add_argument(
        "--async-backend",
        choices=("asyncio", "trio"),
        default="asyncio",
        help="the event loop to run on (default: asyncio; trio needs the trio package)",
    )
    return ap


async def _run(
    config: Config, socket_path: str, args: argparse.Namespace, output: LogOutput
) -> None:
    from labpower.daemon.daemon import Daemon, activated_socket

    daemon = Daemon(
        config,
        socket_path,
        listen_socket=activated_socket(),
        history_from_journal=output.target == "journal",
        follow_log_level=args.log_level is None,
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(output.run)
        await daemon.run()
        tg.cancel_scope.cancel()


def keep_gpio_lines(config: Config) -> None:
    """Under systemd, let the gpio backend keep its line requests in the unit's file
    descriptor store, and give it those the previous daemon kept (after a restart or a
    crash). Kept requests of lines the config no longer names are released here."""
    from labpower.backends import gpio
    from labpower.daemon import notify

    if not notify.enabled():
        return
    passed = notify.take_stored_fds(gpio.STORE_PREFIX)
    gpio.keeper = gpio.LineKeeper(
        notify.store_fd, notify.remove_fd, notify.barrier, notify.is_stopping, passed
    )
    claimed: set[tuple[str, int]] = set()
    for device in config.devices.values():
        if issubclass(device.backend_class, gpio.GpioBackend) and passed:
            claimed |= gpio.GpioBackend.claims(device.options)
    gpio.keeper.drop_unclaimed(claimed)


def steady_memory() -> None:
    """Keep the daemon's memory flat under load (glibc only; elsewhere nothing happens).

    glibc raises its mmap threshold as big blocks are freed, after which they come from the
    heap and are kept when freed; and each thread that allocates can get an arena of its own.
    Under bursts of traffic the RSS then steps up and stays. A fixed threshold sends blocks
    of 128 KiB and more straight back to the system, and two arenas are plenty for one event
    loop and a few worker threads.
    """
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    m_mmap_threshold, m_arena_max = -3, -8  # from <malloc.h>
    mallopt(m_mmap_threshold, 128 * 1024)
    mallopt(m_arena_max, 2)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.check_config is not None:
        try:
            cfg = load(args.check_config)
        except ConfigError as exc:
            print(f"labpowerd: {exc}", file=sys.stderr)
            return 1
        print(f"{cfg.path}: ok ({len(cfg.devices)} devices, {len(cfg.targets)} targets)")
        for name, device in cfg.devices.items():
            for note in device.backend_class.notes(device.options):
                print(f"{cfg.path}: devices.{name}: note: {note}")
        return 0

    path = args.config or default_config_path()
    try:
        cfg = load(path)
    except ConfigError as exc:
        print(f"labpowerd: {exc}", file=sys.stderr)
        return 1
    steady_memory()
    output = setup_logging(args.log_level or cfg.daemon.log_level, args.log_target)
    socket_path = args.socket or cfg.daemon.socket or default_socket_path()
    keep_gpio_lines(cfg)

    from labpower.daemon.daemon import StartupError

    try:
        anyio.run(
            _run,
            cfg,
            socket_path,
            args,
            output,
            backend=args.async_backend,
            backend_options=eventloop.backend_options(args.async_backend),
        )
    except StartupError as exc:
        log.error("cannot start: %s", exc)
        return 1
    except KeyboardInterrupt:
        pass
    finally:
        logging.getLogger("labpower").removeHandler(output)
        output.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
