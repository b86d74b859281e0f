"""The daemon's lifecycle: open boards, bind the socket, serve, reload, stop cleanly.

Under systemd the daemon uses the listening socket passed in $LISTEN_FDS (socket activation),
reports READY=1 once its boards are open and the socket accepts calls, pings the watchdog from
the event loop itself (a stuck loop stops the pings, and systemd restarts it), reloads the
config on SIGHUP (see :mod:`labpower.daemon.reload`) and reports STOPPING=1.

Stopping (SIGTERM/SIGINT) stops accepting connections, lets switching calls in flight finish
(at most ``grace`` seconds), ends the rest, removes the socket (unless systemd owns it) and
closes the boards. Nothing here switches a relay: not at start, reload or stop.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import socket
import stat

import anyio
import anyio.lowlevel
import anyio.to_thread
from anyio.abc import TaskStatus
from labpower.daemon import journal, notify
from labpower.daemon.config import Config, ConfigError, default_state_directory, load
from labpower.daemon.health import HealthChecks
from labpower.daemon.history import history_source
from labpower.daemon.hotplug import Hotplug
from labpower.daemon.lab import Lab
from labpower.daemon.limits import ConnectionLimits, descriptor_ceiling
from labpower.daemon.logbus import LogBus
from labpower.daemon.memory import trimmer
from labpower.daemon.reload import apply as apply_config
from labpower.daemon.server import Server
from labpower.daemon.state import StateStore

log = logging.getLogger("labpower.daemon")

SOCKET_MODE = 0o660
#: The first file descriptor systemd passes (sd_listen_fds)
LISTEN_FDS_START = 3
#: How often STATUS= is refreshed when there is no watchdog to ping
STATUS_INTERVAL = 5.0


#: First and longest pause of the accept loop while descriptors are exhausted, seconds.
ACCEPT_BACKOFF = 0.01
ACCEPT_BACKOFF_MAX = 1.0
#: accept() errors that say the process or system is out of descriptors or memory
_EXHAUSTED = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


def _spare_fd() -> int | None:
    """A descriptor held in reserve for :meth:`Daemon._accept`; None if none is free."""
    try:
        return os.open("/", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None


def _refuse_one(listener: socket.socket, spare: int) -> int | None:
    """Free the spare descriptor, accept one waiting connection with it and close that;
    :returns: the spare, taken again if it can be."""
    os.close(spare)
    try:
        sock, _ = listener.accept()
    except OSError:
        pass
    else:
        sock.close()
    return _spare_fd()


class StartupError(Exception):
    """The daemon cannot start (socket in use, directory not writable...)."""


def bind_socket(path: str) -> socket.socket:
    """A listening Unix socket at ``path``, mode 0660 from the moment it exists.

    A stale socket file (nobody listening) is replaced; a live one is refused.

    :raises StartupError:
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISSOCK(st.st_mode):
            raise StartupError(f"{path} exists and is not a socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(path)
        except OSError as exc:
            if exc.errno not in (errno.ECONNREFUSED, errno.ENOENT):
                raise StartupError(f"cannot check existing socket {path}: {exc}") from exc
            os.unlink(path)
        else:
            raise StartupError(f"another daemon is already listening on {path}")
        finally:
            probe.close()
    directory = os.path.dirname(path) or "."
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        raise StartupError(f"cannot create {directory}: {exc.strerror}") from exc
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o117)  # the socket is never, not even briefly, accessible to others
    try:
        sock.bind(path)
    except OSError as exc:
        sock.close()
        raise StartupError(f"cannot bind {path}: {exc.strerror}") from exc
    finally:
        os.umask(old)
    os.chmod(path, SOCKET_MODE)
    sock.listen(512)
    return sock


def activated_socket() -> socket.socket | None:
    """The listening socket systemd passed ($LISTEN_FDS for this $LISTEN_PID), else None.
    The variables are removed, so that nothing the daemon starts takes them for its own.

    :raises StartupError: a socket was passed but it is not a listening Unix stream socket.
    """
    fds, pid = os.environ.get("LISTEN_FDS"), os.environ.get("LISTEN_PID")
    if not fds or pid != str(os.getpid()):
        return None
    for var in ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"):
        os.environ.pop(var, None)
    try:
        count = int(fds)
    except ValueError:
        raise StartupError(f"LISTEN_FDS is not a number: {fds!r}") from None
    if count < 1:
        return None
    for fd in range(LISTEN_FDS_START, LISTEN_FDS_START + count):
        os.set_inheritable(fd, False)
    try:
        sock = socket.socket(fileno=LISTEN_FDS_START)
    except OSError as exc:
        raise StartupError(f"the socket passed by systemd is unusable: {exc}") from exc
    if (
        sock.family != socket.AF_UNIX
        or sock.type != socket.SOCK_STREAM
        or not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
    ):
        sock.detach()
        raise StartupError(
            "the socket passed by systemd is not a listening Unix stream "
            "socket (check ListenStream= in labpowerd.socket)"
        )
    if count > 1:
        log.warning("using the first of %d sockets passed by systemd", count)
    return sock


class Daemon:
    """One daemon: its lab, log bus and server, and their lifecycle."""

    def __init__(
        self,
        config: Config,
        socket_path: str,
        *,
        grace: float = 10.0,
        listen_socket: socket.socket | None = None,
        history_from_journal: bool = False,
        follow_log_level: bool = False,
        state_directory: str | None = None,
    ) -> None:
        """
        :param listen_socket: a listening socket to use instead of binding ``socket_path``
            (socket activation); it is not removed at stop.
        :param history_from_journal: History reads the journal (the daemon logs there).
        :param follow_log_level: a reload applies the new ``daemon.log_level``.
        """
        self.config = config
        self.listen_socket = listen_socket
        if listen_socket is not None:
            name = listen_socket.getsockname()
            socket_path = name if isinstance(name, str) and name else socket_path
        self.socket_path = socket_path
        self.grace = grace
        self.follow_log_level = follow_log_level
        self.bus = LogBus(config.daemon.history)
        self.bus.sinks.append(journal.annotate)
        self.store = StateStore(
            state_directory or config.daemon.state_directory or default_state_directory()
        )
        self.lab = Lab(config, self.store)
        self.server = Server(self.lab, self.bus)
        self.server.history = history_source(self.bus, history_from_journal)
        #: notices boards coming and going, and probes the devices (hotplug.py)
        self.hotplug = Hotplug(self.lab)
        #: asks network devices whether they answer, every health_interval (health.py)
        self.health = HealthChecks(self.lab)
        self.reloads = 0
        self._reload_lock = anyio.Lock()
        self._stop = anyio.Event()

    def stop(self) -> None:
        """Ask the daemon to stop (from the event loop)."""
        self._stop.set()

    def status(self) -> str:
        """The one-line summary systemd shows (STATUS=)."""
        available = sum(d.available for d in self.lab.devices.values())
        return (
            f"{len(self.lab.targets)} targets, {available}/{len(self.lab.devices)} "
            "devices available"
        )

    async def run(
        self,
        *,
        handle_signals: bool = True,
        task_status: TaskStatus[Daemon] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve until :meth:`stop` or SIGTERM/SIGINT. ``task_status.started()`` fires once
        the socket accepts calls."""
        self.bus.attach()
        try:
            async with anyio.create_task_group() as persist:
                await self.lab.open()
                await self.lab.start(self.store.load())
                # what the boards report replaces what was remembered (all boards at once)
                await self.lab.refresh()
                persist.start_soon(self.store.run)
                persist.start_soon(self.hotplug.run)
                persist.start_soon(trimmer.run)
                persist.start_soon(self.health.run)
                try:
                    await self._listen(handle_signals, task_status)
                finally:
                    persist.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await self.store.flush()
            await self.lab.close()
            self.bus.detach()

    async def _listen(self, handle_signals: bool, task_status: TaskStatus[Daemon]) -> None:
        if self.listen_socket is not None:
            await self._serve(self.listen_socket, handle_signals, task_status)
            return
        sock = bind_socket(self.socket_path)
        try:
            await self._serve(sock, handle_signals, task_status)
        finally:
            try:
                os.unlink(self.socket_path)
            except FileNotFoundError:
                pass

    async def _serve(
        self, listener: socket.socket, handle_signals: bool, task_status: TaskStatus[Daemon]
    ) -> None:
        async with anyio.create_task_group() as tg:
            if handle_signals:
                # start(), not start_soon(): the handlers must be in place before READY=1,
                # or a SIGTERM right after it kills the daemon with the socket left behind
                await tg.start(self._signals, tg)
            # the boards are open now: what the descriptor limit leaves is for connections
            self.server.limits = ConnectionLimits(self.config.daemon, descriptor_ceiling())
            async with anyio.create_task_group() as connections:
                accepting = anyio.CancelScope()
                connections.start_soon(self._accept, listener, connections, accepting)
                status = self.status()
                log.info(
                    "serving on %s%s: %s",
                    self.socket_path,
                    " (socket activation)" if self.listen_socket is not None else "",
                    status,
                )
                notify.ready(status)
                if notify.enabled():
                    tg.start_soon(self._heartbeat, notify.watchdog_interval())
                task_status.started(self)
                await self._stop.wait()
                notify.stopping()
                log.info("stopping")
                accepting.cancel()
                anyio.notify_closing(listener)
                listener.close()
                with anyio.move_on_after(self.grace):
                    await self.server.idle()
                connections.cancel_scope.cancel()
            tg.cancel_scope.cancel()

    async def _accept(
        self, listener: socket.socket, tg: anyio.abc.TaskGroup, scope: anyio.CancelScope
    ) -> None:
        """Accept connections for the server. Out of descriptors (EMFILE, ENFILE: something
        other than connections took them, since those stay below the limit), a spare
        descriptor is given up to accept and close the waiting connection, so its client
        sees a closed connection instead of hanging, and the loop backs off instead of
        spinning on a listener that stays readable; said once, and once when it is over."""
        listener.setblocking(False)
        spare: int | None = _spare_fd()
        refused = 0
        backoff = ACCEPT_BACKOFF
        try:
            with scope:
                while True:
                    await anyio.wait_readable(listener)
                    try:
                        sock, _ = listener.accept()
                    except BlockingIOError:
                        continue
                    except OSError as exc:
                        if exc.errno not in _EXHAUSTED:
                            # that client gave up before we got to it, or we are stopping
                            # and the listener is closed (the checkpoint ends this task then)
                            await anyio.lowlevel.checkpoint()
                            continue
                        if not refused:
                            log.error(
                                "accept failed: %s, with %d connections open: refusing new "
                                "connections until descriptors are free again",
                                exc.strerror,
                                self.server.limits.open,
                            )
                        refused += 1
                        if spare is not None:
                            spare = _refuse_one(listener, spare)
                        else:  # nothing to accept with: wait, ever longer
                            spare = _spare_fd()
                            await anyio.sleep(backoff)
                            backoff = min(backoff * 2, ACCEPT_BACKOFF_MAX)
                        continue
                    if refused:
                        log.warning("accepting connections again: %d were refused", refused)
                        refused, backoff = 0, ACCEPT_BACKOFF
                        spare = spare if spare is not None else _spare_fd()
                    uid = self.server.admit(sock)
                    if uid is not None:
                        tg.start_soon(self.server.handle, sock, uid)
        finally:
            if spare is not None:
                os.close(spare)

    async def _heartbeat(self, watchdog: float | None) -> None:
        """WATCHDOG=1 at half the watchdog timeout, STATUS= when it changes. This runs on the
        event loop on purpose: if the loop is stuck, the pings stop and systemd steps in."""
        last = self.status()
        while True:
            await anyio.sleep(watchdog or STATUS_INTERVAL)
            if watchdog:
                notify.watchdog()
            status = self.status()
            if status != last:
                notify.status(status)
                last = status

    async def _signals(
        self, tg: anyio.abc.TaskGroup, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        wanted = [signal.SIGTERM, signal.SIGINT, signal.SIGHUP]
        with anyio.open_signal_receiver(*wanted) as signals:
            task_status.started()
            async for signum in signals:
                log.info("received %s", signal.Signals(signum).name)
                if signum == signal.SIGHUP:
                    tg.start_soon(self.reload)
                else:
                    self.stop()

    async def reload(self) -> bool:
        """Load the config file again and apply it (:mod:`labpower.daemon.reload`).

        :returns: False when the new file is refused; the running config keeps serving.
        """
        async with self._reload_lock:
            notify.reloading()
            path = self.lab.config.path
            log.info("reloading %s", path)
            try:
                new = await anyio.to_thread.run_sync(load, path)
                if not new.targets and self.lab.targets and not new.daemon.allow_empty:
                    # an emptied or truncated file would make every target vanish at once
                    raise ConfigError(
                        path,
                        "targets",
                        "the file defines no targets; reloading it would remove all "
                        f"{len(self.lab.targets)} (set daemon.allow_empty = true to allow that)",
                    )
            except ConfigError as exc:
                log.error("reload refused, the previous configuration keeps serving: %s", exc)
                notify.ready(f"reload refused ({exc.key or 'file'}): {self.status()}")
                return False
            old = self.lab.config.daemon
            changes = await apply_config(self.lab, new)
            self.server.limits.configure(new.daemon)
            self.config = new
            self.reloads += 1
            if (new.daemon.socket, new.daemon.history) != (old.socket, old.history):
                log.warning("daemon.socket and daemon.history take effect at the next start")
            if self.follow_log_level:
                logging.getLogger("labpower").setLevel(new.daemon.log_level.upper())
            log.info("reloaded %s: %s", path, changes.summary())
            notify.ready(self.status())
            return True
