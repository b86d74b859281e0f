"""The targets' pdudaemon names in labpowerd.toml: checked at load, served in every Target."""

from __future__ import annotations

from typing import Any

import pytest
from labpower.daemon.config import ConfigError, parse
from labpower.daemon.testing import serve


def lab(**targets: dict[str, Any]) -> dict[str, Any]:
    return {
        "devices": {"bench": {"backend": "mock", "channels": 4}},
        "targets": {
            name: {"device": "bench", "channel": n, **t}
            for n, (name, t) in enumerate(targets.items(), 1)
        },
    }


def test_address_is_normalised_and_aliases_kept() -> None:
    cfg = parse(lab(dut1={"pdudaemon": "pdu01:08", "aliases": ["a-1", "b.2"]}, dut2={}))
    assert cfg.targets["dut1"].pdudaemon == "pdu01:8"
    assert cfg.targets["dut1"].aliases == ("a-1", "b.2")
    assert (cfg.targets["dut2"].pdudaemon, cfg.targets["dut2"].aliases) == (None, ())


@pytest.mark.parametrize(
    ("targets", "key", "words"),
    [
        ({"t1": {"pdudaemon": "pdu01"}}, "targets.t1.pdudaemon", "HOSTNAME:PORT"),
        ({"t1": {"pdudaemon": "pdu01:x"}}, "targets.t1.pdudaemon", "HOSTNAME:PORT"),
        ({"t1": {"pdudaemon": ":4"}}, "targets.t1.pdudaemon", "HOSTNAME:PORT"),
        ({"t1": {"pdudaemon": "pdu 01:4"}}, "targets.t1.pdudaemon", "no spaces"),
        ({"t1": {"pdudaemon": 4}}, "targets.t1.pdudaemon", "must be str"),
        (
            {"t1": {"pdudaemon": "pdu:8"}, "t2": {"pdudaemon": "pdu:08"}},
            "targets.t2.pdudaemon",
            "pdu:8 is already targets.t1's",
        ),
        ({"t1": {"aliases": "x"}}, "targets.t1.aliases", "must be a list"),
        ({"t1": {"aliases": [1]}}, "targets.t1.aliases", "is not a name"),
        ({"t1": {"aliases": ["a b"]}}, "targets.t1.aliases", "no spaces"),
        (
            {"t1": {"aliases": ["x"]}, "t2": {"aliases": ["x"]}},
            "targets.t2.aliases",
            "already targets.t1",
        ),
    ],
)
def test_bad_names_are_refused_naming_the_key(
    targets: dict[str, dict[str, Any]], key: str, words: str
) -> None:
    with pytest.raises(ConfigError) as err:
        parse(lab(**targets), "lab.toml")
    assert err.value.key == key
    assert words in err.value.reason


def test_list_and_get_carry_the_names() -> None:
    with serve(lab(dut1={"pdudaemon": "pdu01:019", "aliases": ["x"]}, dut2={})) as client:
        dut1 = client.get("dut1")
        assert (dut1.pdudaemon, dut1.aliases) == ("pdu01:19", ("x",))
        listed = {t.name: (t.pdudaemon, t.aliases) for t in client.targets()}
        assert listed == {"dut1": ("pdu01:19", ("x",)), "dut2": (None, ())}
