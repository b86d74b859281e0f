"""JSON text for the varlink codec, from the standard library's C accelerator alone.

``json.dumps`` and ``json.loads`` do their work in ``_json``: its encoder and its scanner.
The ``json`` package around them also imports ``re`` (and with it ``enum``) and compiles
regular expressions at import, for its pure-Python fallbacks and to skip whitespace: a fifth
of ``labpower on``'s start (issue #18). This module calls ``_json`` the way ``json`` does,
with the options the wire uses, and nothing else: the output and the values decoded are
``json``'s (a test compares them on generated documents), and so are the error messages,
since the error class is ``json``'s own (``json`` is imported when malformed input is
reported).
"""

from __future__ import annotations

import _json

# typing is not imported at run time (see frozen.py); the checker reads this block as true
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NoReturn

__all__ = ["dumps", "loads"]

#: What JSON counts as whitespace around a value (json.decoder.WHITESPACE).
_WHITESPACE = " \t\n\r"
_CONSTANTS = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}


def _not_serializable(value: object) -> NoReturn:
    # json.JSONEncoder.default
    raise TypeError(f"Object of type {value.__class__.__name__} is not JSON serializable")


def dumps(value: object, *, allow_nan: bool = False) -> str:
    """``json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=allow_nan)``.

    :raises TypeError: a value JSON cannot hold (a set, bytes...).
    :raises ValueError: a circular reference, or (unless ``allow_nan``) a float JSON cannot
        hold (nan, inf).
    """
    if isinstance(value, str):
        return _json.encode_basestring(value)
    # a new encoder for each document, as json makes: its markers (what it is inside of, for
    # the circular check) must start empty
    encode = _json.make_encoder(
        {}, _not_serializable, _json.encode_basestring, None, ":", ",", False, False, allow_nan
    )
    return "".join(encode(value, 0))


class _Options:
    """What ``_json.make_scanner`` reads from a ``json.JSONDecoder``: the defaults."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    array_hook = None  # read by Python 3.15 and later
    parse_float = float
    parse_int = int
    parse_constant = _CONSTANTS.__getitem__


# The scanner's key memo is cleared after each document; json.loads shares one scanner
# between threads the same way.
_scan = _json.make_scanner(_Options())  # type: ignore[arg-type]  # the stub wants a scanner; any object with the options does


def _error(message: str, text: str, position: int) -> ValueError:
    from json import JSONDecodeError

    return JSONDecodeError(message, text, position)


def loads(data: bytes) -> Any:
    """``json.loads(data)`` for UTF-8 ``data`` (a byte order mark is refused, as in a str).

    :raises ValueError: ``data`` is not one JSON value (``json.JSONDecodeError``), or not
        UTF-8 (``UnicodeDecodeError``).
    :raises RecursionError: the value is nested too deep.
    """
    # surrogatepass: as json.loads decodes bytes (the caller decides about lone surrogates)
    text = data.decode("utf-8", "surrogatepass")
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        value, end = _scan(text, start)
    except StopIteration as exc:
        raise _error("Expecting value", text, exc.value) from None
    rest = text[end:]
    if rest and rest.lstrip(_WHITESPACE):
        raise _error("Extra data", text, len(text) - len(rest.lstrip(_WHITESPACE)))
    return value
