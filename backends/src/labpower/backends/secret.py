"""Secrets in device options: SNMP communities, v3 keys, HTTP passwords.

A backend declares a secret option as ``password: Secret | None = None``. The config gives it
one of three ways, the same key stem for every backend (see :func:`resolve`):

- inline: ``password = "..."``;
- from a file only the daemon's user can read: ``password_file = "/etc/labpower/pdu1.pw"``;
- from a systemd credential: ``password_credential = "pdu1"``, read from
  ``$CREDENTIALS_DIRECTORY/pdu1`` (``LoadCredential=`` / ``SetCredentialEncrypted=``).

A :class:`Secret` never shows its value: ``repr`` and ``str`` say only where it came from, so
an options dataclass can be logged or put in an error message safely.
"""

from __future__ import annotations

import os
import stat
from typing import Literal

from labpower.backends.errors import OptionError

Source = Literal["inline", "file", "credential"]
#: suffixes of the config keys that name where a secret is read from
SUFFIXES: tuple[tuple[str, Source], ...] = (
    ("", "inline"),
    ("_file", "file"),
    ("_credential", "credential"),
)
#: longest secret read from a file (a community or password is short; a big file is a mistake)
MAX_SECRET = 4096


class Secret:
    """A secret string whose value is shown only by :meth:`reveal`."""

    __slots__ = ("_value", "origin", "source")

    def __init__(self, value: str, source: Source = "inline", origin: str = "") -> None:
        self._value = value
        #: how the config gave it
        self.source: Source = source
        #: the file or credential it was read from ("" when inline)
        self.origin = origin

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        where = f" {self.origin}" if self.origin else ""
        return f"<secret ({self.source}{where})>"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and (self._value, self.source, self.origin) == (
            other._value,
            other.source,
            other.origin,
        )

    def __hash__(self) -> int:
        return hash((self._value, self.source, self.origin))


def exposure(st: os.stat_result) -> str | None:
    """Why a file with this status is not private to the daemon's user, or None if it is.

    A file that everyone may read is not. Group read access is the admin's choice (a file
    ``root:labpower`` mode 0640 is the usual way), so it is allowed: the daemon cannot tell
    who else is in that group, and ``--check-config`` runs as another user than the daemon.
    """
    if st.st_mode & stat.S_IROTH:
        return f"it is readable by everyone (mode {stat.S_IMODE(st.st_mode):04o})"
    return None


def _read(path: str, key: str, check_owner: bool) -> str:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise OptionError(key, f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OptionError(key, f"{path} is not a regular file")
        if check_owner:
            problem = exposure(st)
            if problem is not None:
                raise OptionError(
                    key,
                    f"{path} must be readable only by the daemon's user, but {problem} "
                    f"(chmod o-rwx {path})",
                )
        data = os.read(fd, MAX_SECRET + 1)
    except OSError as exc:
        raise OptionError(key, f"cannot read {path}: {exc.strerror or exc}") from exc
    finally:
        os.close(fd)
    if len(data) > MAX_SECRET:
        raise OptionError(key, f"{path} is longer than {MAX_SECRET} bytes: not a secret")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise OptionError(key, f"{path} is not UTF-8 text") from None
    # a trailing newline is the editor's, not the secret's
    text = text.removesuffix("\n").removesuffix("\r")
    if not text:
        raise OptionError(key, f"{path} is empty")
    return text


def resolve(stem: str, given: dict[str, object]) -> Secret | None:
    """The secret named ``stem`` from the config keys ``stem``, ``stem_file`` and
    ``stem_credential`` in ``given`` (those present, values unchecked); None if none is.

    :raises OptionError: more than one way given, a value of the wrong type, a file others
        can read, a credential without ``$CREDENTIALS_DIRECTORY``, an unreadable or empty
        file. The error names the key.
    """
    present = [(stem + suffix, source) for suffix, source in SUFFIXES if stem + suffix in given]
    if not present:
        return None
    if len(present) > 1:
        raise OptionError(present[1][0], f"give only one of {', '.join(k for k, _ in present)}")
    key, source = present[0]
    value = given[key]
    if not isinstance(value, str) or not value:
        raise OptionError(key, f"must be a non-empty string, not {value!r}")
    if source == "inline":
        return Secret(value)
    if source == "file":
        if not os.path.isabs(value):
            raise OptionError(key, f"must be an absolute path, not {value!r}")
        return Secret(_read(value, key, check_owner=True), "file", value)
    if "/" in value or value in (".", ".."):
        raise OptionError(key, f"must be a credential name (no '/'), not {value!r}")
    directory = os.environ.get("CREDENTIALS_DIRECTORY")
    if not directory:
        raise OptionError(
            key,
            f"credential {value!r} needs $CREDENTIALS_DIRECTORY: give it to the unit with "
            f"LoadCredential={value}:/path/to/file (or SetCredentialEncrypted=), or use "
            f"{stem}_file",
        )
    # systemd makes the credential directory private to the service: no owner check
    return Secret(
        _read(os.path.join(directory, value), key, check_owner=False), "credential", value
    )
