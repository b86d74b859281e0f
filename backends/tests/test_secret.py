"""Secrets in options: inline, from a private file, from a systemd credential; never shown."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest
from labpower.backends import OptionError, parse_options
from labpower.backends.secret import Secret


@dataclass(frozen=True, slots=True)
class PduOptions:
    host: str
    community: Secret | None = None
    password: Secret | None = None


@dataclass(frozen=True, slots=True)
class NeedsSecret:
    password: Secret


def private(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def test_inline() -> None:
    opts = parse_options(PduOptions, {"host": "pdu", "community": "s3cret"})
    assert opts.community is not None
    assert opts.community.reveal() == "s3cret"
    assert opts.community.source == "inline"
    assert opts.password is None


def test_from_a_private_file_without_its_newline(tmp_path: Path) -> None:
    f = private(tmp_path / "pdu.community", "from-file\n")
    opts = parse_options(PduOptions, {"host": "pdu", "community_file": str(f)})
    assert opts.community is not None
    assert opts.community.reveal() == "from-file"
    assert (opts.community.source, opts.community.origin) == ("file", str(f))


def test_group_readable_file_is_the_admins_choice(tmp_path: Path) -> None:
    f = private(tmp_path / "pw", "x", 0o640)
    assert parse_options(NeedsSecret, {"password_file": str(f)}).password.reveal() == "x"


def test_from_a_credential(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    private(tmp_path / "pdu1", "cred-value\n", 0o400)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    opts = parse_options(PduOptions, {"host": "pdu", "password_credential": "pdu1"})
    assert opts.password is not None
    assert opts.password.reveal() == "cred-value"
    assert opts.password.source == "credential"


def test_never_shown() -> None:
    opts = parse_options(PduOptions, {"host": "pdu", "community": "s3cret", "password": "pw"})
    for text in (repr(opts), str(opts), f"{opts.community}", repr(opts.password)):
        assert "s3cret" not in text
        assert "pw'" not in text
    assert "secret (inline)" in repr(opts)


@pytest.mark.parametrize(
    ("table", "key", "reason"),
    [
        (
            {"host": "h", "community": "a", "community_file": "/x"},
            "community_file",
            "give only one of community, community_file",
        ),
        ({"host": "h", "community": 5}, "community", "must be a non-empty string"),
        ({"host": "h", "community": ""}, "community", "must be a non-empty string"),
        ({"host": "h", "community_file": "rel/path"}, "community_file", "absolute path"),
        ({"host": "h", "community_file": "/nonexistent/c"}, "community_file", "cannot read"),
        ({"host": "h", "password_credential": "../x"}, "password_credential", "no '/'"),
        ({"host": "h", "community_path": "/x"}, "community_path", "unknown option"),
    ],
)
def test_bad_ways_name_the_key(table: dict[str, object], key: str, reason: str) -> None:
    with pytest.raises(OptionError) as info:
        parse_options(PduOptions, table)
    assert info.value.key == key
    assert reason in info.value.reason


def test_unknown_key_lists_the_secret_forms() -> None:
    with pytest.raises(OptionError) as info:
        parse_options(PduOptions, {"host": "h", "comunity": "x"})
    assert "community_credential" in info.value.reason


def test_required_secret_missing() -> None:
    with pytest.raises(OptionError) as info:
        parse_options(NeedsSecret, {})
    assert info.value.key == "password"
    assert "password_file" in info.value.reason


def test_world_readable_file_refused(tmp_path: Path) -> None:
    f = private(tmp_path / "pw", "x", 0o644)
    with pytest.raises(OptionError) as info:
        parse_options(NeedsSecret, {"password_file": str(f)})
    assert info.value.key == "password_file"
    assert "readable by everyone (mode 0644)" in info.value.reason
    assert f"chmod o-rwx {f}" in info.value.reason


@pytest.mark.parametrize(
    ("content", "reason"),
    [(b"", "is empty"), (b"\n", "is empty"), (b"\xff\xfe", "not UTF-8"), (b"x" * 5000, "longer")],
)
def test_bad_file_content(tmp_path: Path, content: bytes, reason: str) -> None:
    f = tmp_path / "pw"
    f.write_bytes(content)
    f.chmod(0o600)
    with pytest.raises(OptionError, match=reason):
        parse_options(NeedsSecret, {"password_file": str(f)})


def test_symlink_checked_where_it_points(tmp_path: Path) -> None:
    target = private(tmp_path / "real", "x")
    (tmp_path / "link").symlink_to(target)
    assert parse_options(NeedsSecret, {"password_file": str(tmp_path / "link")}).password
    target.chmod(0o644)
    with pytest.raises(OptionError, match="readable by everyone"):
        parse_options(NeedsSecret, {"password_file": str(tmp_path / "link")})


def test_directory_refused(tmp_path: Path) -> None:
    with pytest.raises(OptionError, match="not a regular file"):
        parse_options(NeedsSecret, {"password_file": str(tmp_path)})


def test_credential_without_credentials_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    with pytest.raises(OptionError) as info:
        parse_options(NeedsSecret, {"password_credential": "pdu1"})
    assert "LoadCredential=pdu1:" in info.value.reason


def test_missing_credential(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    with pytest.raises(OptionError, match=f"cannot read {os.path.join(tmp_path, 'nope')}"):
        parse_options(NeedsSecret, {"password_credential": "nope"})
