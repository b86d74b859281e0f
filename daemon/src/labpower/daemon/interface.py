"""The varlink interface descriptions the daemon serves, verbatim, through
``org.varlink.service.GetInterfaceDescription``."""

from __future__ import annotations

POWER = "io.labpower.Power"
SERVICE = "org.varlink.service"

POWER_IDL = """\
interface io.labpower.Power

type Target (
  name: string,
  device: string,
  channel: int,
  state: (on, off, unknown),
  verified: bool,          # state was read back from the hardware, not assumed
  available: bool,         # its device is present and answering
  since: ?string,          # RFC 3339 time of the last change made by this daemon
  lease: ?Lease,           # who holds the target exclusively, if anybody
  problem: ?string,        # why its device is unavailable (refused, timeout, auth...)
  pdudaemon: ?string,      # "pdu:port": how pdudaemon clients name it (labpower-pdudaemon)
  aliases: ?[]string       # its pdudaemon aliases
)

# An exclusive hold on a target: only its holder may switch it.
type Lease (uid: int, pid: int, name: ?string, since: string, expires: ?string)

type Reading (voltage: float, current: float, apparent_power: float)

type LogEntry (
  time: string, level: string, message: string,
  target: ?string, device: ?string, seq: int,
  channel: ?int, op: ?string, state: ?string,
  before: ?string, client_uid: ?int, client_pid: ?int
)

# Who may read a target (see it in List, Get it, Read it, see its entries in Logs and
# History) is its read policy: by default whoever may switch it.
# The targets the caller may read, as the daemon knows them (read back at start and at each
# switch; a state it does not know is read from the board); refresh: ask the boards again;
# known_only: read no board at all, a state it does not know stays unknown (for a caller that
# needs the names, not the states, and must not wait for a slow board)
method List(refresh: ?bool, known_only: ?bool) -> (targets: []Target)
method Get(target: string, refresh: ?bool) -> (target: Target)
# lease: the token of a lease held by another connection of the same user (see Acquire);
# a Cycle checks the lease again before its "on": one taken meanwhile stops it (Locked)
method On(target: string, lease: ?string) -> (target: Target, log_seq: int)
method Off(target: string, lease: ?string) -> (target: Target, log_seq: int)
method Cycle(target: string, delay: ?float, lease: ?string) -> (target: Target, log_seq: int)
# "more": one reply per reading; without "more": one reading
# count: with "more", stop after this many readings (the last reply does not continue)
method Read(target: string, interval: ?float, count: ?int) -> (reading: Reading)
# requires "more": the first reply has no entry (subscription is live), then one entry per reply
method Logs(targets: ?[]string, level: ?string) -> (entry: ?LogEntry)
# past entries, oldest first, the newest limit of them: from the journal (across daemon
# restarts) where the daemon logs there, else those it still holds in memory;
# since: an RFC 3339 time, or a span back from now such as "90s", "5m", "1h", "2d";
# truncated: the oldest were left out to keep the reply within the message size limit
method History(targets: ?[]string, level: ?string, limit: ?int, since: ?string)
  -> (entries: []LogEntry, truncated: ?bool)

# Take the target exclusively for this connection (renews the lease if already held). It
# ends with the connection, on Release, or after timeout seconds. The token lets other
# connections of the same user (e.g. child processes) act under this lease.
method Acquire(target: string, name: ?string, timeout: ?float) -> (target: Target, token: string)
# force: break the lease whoever holds it (root and daemon.admin_groups only; logged)
method Release(target: string, token: ?string, force: ?bool) -> (target: Target)

# Counters for monitoring (labpower-web turns them into Prometheus metrics): the daemon's
# since it started; each target's and device's since it was configured (a reload that
# changes one starts it again). Only the targets the caller may read, and their devices.
method Stats() -> (
  version: string,
  uptime: float,           # seconds since the daemon started
  connections: int,        # connections open now (this one included)
  streams: int,            # Read and Logs streams open now
  subscribers: int,        # Logs subscriptions open now
  dropped: int,            # log entries dropped for subscribers that read too slowly
  targets: []TargetStats,
  devices: []DeviceStats
)

# A target's switches of its board: a cycle counts twice (off, on), a start-up switch as
# op "start"; result: ok, timeout, unavailable, error, mismatch, not_supported
type TargetStats (name: string, switches: []SwitchCount, latency: Latency)
type SwitchCount (op: string, result: string, count: int)
# How long the switches took: counts[i] took at most bounds[i] seconds (and more than the
# bound before); the last count, longer than every bound; sum: seconds in all
type Latency (bounds: []float, counts: []int, sum: float)
# errors by kind: timeout, unavailable, error; reconnects: opened again after the first open
type DeviceStats (name: string, backend: string, available: bool, problem: ?string,
  errors: [string]int, reconnects: int)

error TargetNotFound (target: string)
error DeviceUnavailable (device: string, reason: string)
error Timeout (target: string, seconds: float)
error NotSupported (target: string, operation: string)
error StateMismatch (target: string, expected: string, actual: string)
# the board answered, but not as its protocol says
error DeviceError (device: string, reason: string)
# somebody else holds the target's lease
error Locked (target: string, holder: Lease)
# the caller's user has this many streams (Read with "more", Logs) open already
error TooManyStreams (limit: int)
# the target restores its state at start, and its new state could not be saved first:
# nothing was switched
error StateNotSaved (target: string, reason: string)
"""

SERVICE_IDL = """\
# Every varlink service provides this interface: it describes the service and the
# interfaces it implements.
interface org.varlink.service

# Who made the service, its version, and the interfaces it implements.
method GetInfo() -> (
  vendor: string,
  product: string,
  version: string,
  url: string,
  interfaces: []string
)

# The description of one interface the service implements.
method GetInterfaceDescription(interface: string) -> (description: string)

# No such interface here.
error InterfaceNotFound (interface: string)

# No such method in the interface.
error MethodNotFound (method: string)

# The interface has the method, but this service does not implement it.
error MethodNotImplemented (method: string)

# A parameter is missing, or has the wrong type or value.
error InvalidParameter (parameter: string)

# The caller may not make this call.
error PermissionDenied ()

# The call needs the "more" flag.
error ExpectedMore ()
"""

DESCRIPTIONS = {POWER: POWER_IDL, SERVICE: SERVICE_IDL}
