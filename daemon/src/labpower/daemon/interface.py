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
  since: ?string           # RFC 3339 time of the last change made by this daemon
)

type Reading (voltage: float, current: float, apparent_power: float)

type LogEntry (
  time: string, level: string, message: string,
  target: ?string, device: ?string, seq: int,
  channel: ?int, op: ?string, state: ?string
)

method List() -> (targets: []Target)
method Get(target: string) -> (target: Target)
method On(target: string) -> (target: Target, log_seq: int)
method Off(target: string) -> (target: Target, log_seq: int)
method Cycle(target: string, delay: ?float) -> (target: Target, log_seq: int)
# "more": one reply per reading; without "more": one reading
# count: with "more", stop after this many readings (the last reply does not continue)
method Read(target: string, interval: ?float, count: ?int) -> (reading: Reading)
# requires "more": the first reply has no entry (subscription is live), then one entry per reply
method Logs(targets: ?[]string, level: ?string) -> (entry: ?LogEntry)
# past entries the daemon still holds, oldest first, at most limit of them
method History(targets: ?[]string, level: ?string, limit: ?int) -> (entries: []LogEntry)

error TargetNotFound (target: string)
error DeviceUnavailable (device: string, reason: string)
error Timeout (target: string, seconds: float)
error NotSupported (target: string, operation: string)
error StateMismatch (target: string, expected: string, actual: string)
# the board answered, but not as its protocol says
error DeviceError (device: string, reason: string)
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
