"""Escaping text that came from somebody else before it is logged or shown.

A client chooses lease names, target names, method names; a config file chooses its keys.
Written raw, such a string forges log lines (a newline), hides an entry (journald stores a
message with a NUL as a blob), or drives the reader's terminal (ANSI escapes). :func:`escape`
is the one function the daemon (log entries, journal, stderr, config errors) and the
``labpower`` command use for all of these.
"""

from __future__ import annotations

#: Characters of an outside string kept when it is logged; the rest is cut, marked "...".
LIMIT = 200


def _escape_char(ch: str) -> str:
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def escape(text: str, limit: int = LIMIT) -> str:
    """``text`` with every character that is not printable (control characters, NUL, ESC,
    line and paragraph separators, format characters such as bidirectional overrides, lone
    surrogates) written as ``\\xNN`` / ``\\uNNNN`` / ``\\UNNNNNNNN``, and cut after ``limit``
    characters (marked by "...").

    A backslash is kept as it is, so escaping twice changes nothing: a string may pass
    through here at its source and again where it is written out.
    """
    cut = len(text) > limit
    if cut:
        text = text[:limit]
    if not text.isprintable():  # the common case costs one C-level scan
        text = "".join(ch if ch.isprintable() else _escape_char(ch) for ch in text)
    return text + "..." if cut else text
