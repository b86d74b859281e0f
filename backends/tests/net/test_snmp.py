"""The snmp backend against real snmpsim agents on loopback, one per profile: switching with
read-back by GET, outlet names, readings, SNMP v1/v2c/v3, and the faults of a real network:
a wrong community, v3 credentials refused, no such object, an agent that stops answering."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from labpower.backends import (
    DeviceUnavailableError,
    HardwareTimeout,
    Measurement,
    NotSupportedError,
    OptionError,
    parse_options,
)
from labpower.backends.net.snmp import SnmpOptions
from labpower.backends.sim.snmp import READINGS, SYS_DESCR, SnmpAgent

from .conftest import MakeDevice

pytestmark = pytest.mark.anyio
OUTLETS = 4
#: the deadline where a test does not measure it: v3 requests on a loaded 2-core machine
SLOW = 10.0
NAMES = {2: "web01", 3: "db 'main'"}
#: the profile name a user writes for each simulated MIB
FAMILY = {"apc-ms": "apc", "apc-rpdu": "apc", "apc-rpdu2": "apc", "sentry3": "sentry"}


@pytest.fixture(scope="module", params=sorted(SYS_DESCR))
def agent(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SnmpAgent]:
    """A simulated PDU of each profile, shared by the tests of this module (each test sets
    the outlets it checks)."""
    profile = str(request.param)
    with SnmpAgent(
        tmp_path_factory.mktemp(profile),
        profile,
        outlets=OUTLETS,
        community="lab",
        names=NAMES,
    ) as made:
        yield made


def table(agent: SnmpAgent, **options: object) -> dict[str, object]:
    return {
        "host": agent.address,
        "profile": FAMILY.get(agent.profile, agent.profile),
        "community": "lab",
        **options,
    }


async def test_switch_reads_back(agent: SnmpAgent, device: MakeDevice) -> None:
    dev = device("snmp", channels=OUTLETS, timeout=SLOW, **table(agent))
    assert await dev.switch(3, False) is False
    assert await dev.switch(2, True) is True
    states = await dev.states()
    assert (states[2], states[3]) == (True, False)
    assert await dev.switch(2, False) is False
    assert await dev.state(2) is False


async def test_family_finds_the_mib_and_names(agent: SnmpAgent, device: MakeDevice) -> None:
    dev = device("snmp", channels=OUTLETS, timeout=SLOW, **table(agent))
    assert await dev.open()
    backend = dev.backend
    assert backend.profile is not None  # type: ignore[attr-defined]
    assert backend.profile.name == agent.profile  # type: ignore[attr-defined]
    assert backend.outlet_names == {  # type: ignore[attr-defined]
        1: "Outlet 1",
        2: "web01",
        3: "db 'main'",
        4: "Outlet 4",
    }


async def test_readings_where_the_mib_has_them(agent: SnmpAgent, device: MakeDevice) -> None:
    dev = device("snmp", channels=OUTLETS, timeout=SLOW, **table(agent))
    if agent.profile not in READINGS:
        with pytest.raises(NotSupportedError):
            await dev.measure(1)
        return
    volts, amps = READINGS[agent.profile]
    await dev.switch(4, True)
    assert await dev.measure(4) == Measurement(volts, amps)
    await dev.switch(4, False)
    assert await dev.measure(4) == Measurement(volts, 0.0)


async def test_snmp_v1(raritan: SnmpAgent, device: MakeDevice) -> None:
    dev = device("snmp", channels=2, timeout=SLOW, **table(raritan, version="1"))
    await dev.switch(1, True)
    assert await dev.state(1) is True
    await dev.switch(1, False)


async def test_snmp_v3(raritan: SnmpAgent, device: MakeDevice) -> None:
    v3 = {
        "host": raritan.address,
        "profile": raritan.profile,
        "version": "3",
        "user": "labuser",
        "auth_protocol": "SHA",
        "auth_key": "authkey-123",
        "priv_protocol": "AES",
        "priv_key": "privkey-123",
        "context": "lab",  # snmpsim: the data file's name
    }
    dev = device("snmp", channels=2, timeout=SLOW, **v3)
    assert await dev.switch(1, True) is True
    assert await dev.switch(1, False) is False
    wrong = device("snmp", channels=2, timeout=SLOW, **{**v3, "auth_key": "wrong-key-1"})
    assert not await wrong.open()
    assert "SNMPv3 authentication failed" in (wrong.problem or "")
    with pytest.raises(DeviceUnavailableError, match="authentication failed"):
        await wrong.switch(1, True)
    assert await dev.state(1) is False


async def test_wrong_community_is_no_answer(raritan: SnmpAgent, device: MakeDevice) -> None:
    dev = device("snmp", timeout=0.5, **table(raritan, community="nope"))
    assert not await dev.open()
    assert dev.problem == "open timed out after 0.5 s"


async def test_outlet_that_does_not_exist(agent: SnmpAgent, device: MakeDevice) -> None:
    dev = device("snmp", channels=OUTLETS + 1, timeout=SLOW, **table(agent, profile=agent.profile))
    assert not await dev.open()
    assert f"outlet {OUTLETS + 1} does not exist" in (dev.problem or "")


async def test_never_switches_on_open_or_check(agent: SnmpAgent, device: MakeDevice) -> None:
    dev = device("snmp", channels=OUTLETS, timeout=SLOW, **table(agent))
    await dev.switch(1, True)
    await dev.switch(2, False)
    other = device("snmp", channels=OUTLETS, timeout=SLOW, **table(agent))
    assert await other.open()
    assert await other.check()
    assert await other.probe()
    assert (
        (await dev.states())[1:3]
        if False
        else [await dev.state(1), await dev.state(2)]
        == [
            True,
            False,
        ]
    )
    await dev.switch(1, False)


@pytest.fixture(scope="module")
def raritan(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SnmpAgent]:
    with SnmpAgent(
        tmp_path_factory.mktemp("raritan-faults"),
        "raritan",
        outlets=2,
        community="lab",
        v3_user="labuser",
        auth_key="authkey-123",
        priv_key="privkey-123",
    ) as made:
        yield made


async def test_agent_stops_answering_mid_run(raritan: SnmpAgent, device: MakeDevice) -> None:
    dev = device(
        "snmp", channels=2, timeout=2.0, host=raritan.address, profile="raritan", community="lab"
    )
    assert await dev.switch(1, True) is True
    raritan.pause()
    try:
        with pytest.raises(HardwareTimeout):
            await dev.switch(1, False)
        assert dev.problem == "no answer within 2 s"
        assert not await dev.check()
    finally:
        raritan.resume()
    with anyio.fail_after(10):
        while not await dev.check():
            pass
    assert await dev.switch(1, False) is False


async def test_ignored_switch_shows_in_the_read_back(
    raritan: SnmpAgent, device: MakeDevice
) -> None:
    dev = device(
        "snmp",
        channels=2,
        timeout=SLOW,
        host=raritan.address,
        profile="raritan",
        community="lab",
    )
    await dev.switch(2, False)
    raritan.ignore_next_switch(2)
    assert await dev.switch(2, True) is False


async def test_wrong_profile_says_so(raritan: SnmpAgent, device: MakeDevice) -> None:
    dev = device(
        "snmp", channels=2, timeout=SLOW, host=raritan.address, profile="apc", community="lab"
    )
    assert not await dev.open()
    assert "answers none of the apc MIBs" in (dev.problem or "")
    eaton = device(
        "snmp", channels=2, timeout=SLOW, host=raritan.address, profile="eaton", community="lab"
    )
    assert not await eaton.open()
    assert "or the PDU is not eaton" in (eaton.problem or "")


async def test_custom_profile(raritan: SnmpAgent, device: MakeDevice) -> None:
    base = "1.3.6.1.4.1.13742.6"
    dev = device(
        "snmp",
        channels=2,
        timeout=SLOW,
        host=raritan.address,
        profile="custom",
        community="lab",
        state_oid=f"{base}.4.1.2.1.3.1",
        on_oid=f"{base}.4.1.2.1.2.1",
        on_value=1,
        off_value=0,
        state_on=7,
        state_off=8,
        name_oid=f"{base}.3.5.3.1.3.1.{{n}}",
        current_oid=f"{base}.5.4.3.1.4.1.{{n}}.1",
        current_scale=0.001,
        voltage_oid=f"{base}.5.4.3.1.4.1.{{n}}.4",
    )
    assert await dev.switch(1, True) is True
    assert await dev.measure(1) == Measurement(230.0, 0.105)
    assert await dev.switch(1, False) is False


@pytest.mark.parametrize(
    ("options", "key", "reason"),
    [
        ({"host": "pdu", "community": "c"}, "profile", "must be one of"),
        ({"host": "pdu", "profile": "hp"}, "profile", "must be one of apc, sentry"),
        ({"host": "pdu", "profile": "apc"}, "community", "needs a community"),
        ({"host": "pdu", "profile": "apc", "version": "3"}, "user", "needs a user"),
        (
            {"host": "pdu", "profile": "apc", "version": "3", "user": "u", "auth_key": "k"},
            "auth_key",
            "together",
        ),
        (
            {"host": "pdu", "profile": "apc", "community": "c", "state_oid": "1.3"},
            "state_oid",
            'only for profile = "custom"',
        ),
        ({"host": "pdu", "profile": "custom", "community": "c"}, "state_oid", "needs state_oid"),
        ({"host": "pdu:99999", "profile": "apc", "community": "c"}, "host", "1..65535"),
        ({"host": "pdu", "profile": "apc", "version": "2", "community": "c"}, "version", "'2c'"),
    ],
)
def test_options_are_checked(options: dict[str, object], key: str, reason: str) -> None:
    with pytest.raises(OptionError) as info:
        parse_options(SnmpOptions, options)
    assert info.value.key == key
    assert reason in info.value.reason


def test_community_never_shown(tmp_path: Path) -> None:
    opts = parse_options(SnmpOptions, {"host": "pdu", "profile": "apc", "community": "s3cr3t"})
    assert "s3cr3t" not in repr(opts)
