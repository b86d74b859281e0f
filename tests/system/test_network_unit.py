"""The network drop-in: labpowerd.service with it still verifies and scores <= 2.5, and it
opens exactly IPv4/IPv6 sockets and the addresses the admin allows."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from .conftest import PACKAGING
from .test_units import analyze, unit_root

DROP_IN = PACKAGING / "systemd-dropins" / "labpowerd.service.d" / "network.conf"


def root_with_drop_in(tmp_path: Path) -> Path:
    root = unit_root(tmp_path)
    target = root / "etc/systemd/system/labpowerd.service.d"
    target.mkdir()
    shutil.copy2(DROP_IN, target / "network.conf")
    return root


def test_unit_with_the_drop_in_verifies(tmp_path: Path) -> None:
    result = analyze(root_with_drop_in(tmp_path), "verify", "--man=no", "labpowerd.service")
    assert (result.returncode, result.stderr, result.stdout) == (0, "", "")


def test_unit_with_the_drop_in_scores_2_5_or_lower(tmp_path: Path) -> None:
    result = analyze(
        root_with_drop_in(tmp_path), "security", "--offline=true", "--no-pager", "labpowerd.service"
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout + result.stderr
    found = re.search(r"Overall exposure level for labpowerd\.service: (\d+\.\d+)", out)
    assert found, out
    assert float(found.group(1)) <= 2.5, out
    # and the drop-in did open the network: the score saw it (the base unit's is lower)
    assert re.search(r"✗\s+PrivateNetwork=", out), out


def test_drop_in_opens_ip_only_and_allows_no_address_by_default() -> None:
    settings = [
        line for line in DROP_IN.read_text().splitlines() if line and not line.startswith("#")
    ]
    assert settings == [
        "[Service]",
        "PrivateNetwork=no",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
        "IPAddressAllow=localhost",
    ]
