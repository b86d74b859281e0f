"""Every backend labpower ships, through the one contract suite, each on its rig."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from labpower.backends.contract import BackendContract, Rig, missing_rigs
from labpower.backends.sim.snmp import SnmpAgent

from .rigs import RIGS, SnmpRig, shared_agent

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def snmp_agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[], SnmpAgent]]:
    with shared_agent(tmp_path_factory.mktemp("snmp")) as get:
        yield get


class TestShippedBackends(BackendContract):
    @pytest.fixture(params=sorted(RIGS))
    def rig(self, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Rig]:
        kind, make = RIGS[str(request.param)]
        with make(tmp_path) as made:
            assert made.kind == kind
            yield made


class TestSnmp(BackendContract):
    """snmp on one agent shared by the tests (snmpsim takes seconds to start), on asyncio
    only: the backend runs pysnmp on a loop thread of its own whatever loop calls it, and
    opening a session costs it seconds."""

    @pytest.fixture
    def anyio_backend(self) -> str:
        return "asyncio"

    @pytest.fixture
    def rig(self, snmp_agent: Callable[[], SnmpAgent]) -> Iterator[Rig]:
        with SnmpRig(snmp_agent()) as made:
            yield made


#: Backends no rig on this machine can play, and where the same suite runs for them instead.
#: gpio: there is no gpiochip here (a container; no gpio-sim module): the suite runs in the
#: lab-host VM's guest on gpio-sim chips (tests/vm/guest/gpio_contract.py, its rig in
#: gpio_rig.py), and that test fails the host's suite on any failure in the guest.
ELSEWHERE = {
    "gpio": "tests/vm/test_labhost.py::test_gpio_keeps_the_backend_contract_on_a_real_chip"
}


def test_every_registered_backend_has_a_rig() -> None:
    # a backend run elsewhere must be run there: the test it names exists
    for where in ELSEWHERE.values():
        path, _, name = where.partition("::")
        assert f"def {name}(" in (ROOT / path).read_text(), where
    kinds = [kind for kind, _ in RIGS.values()] + [SnmpRig.kind, *ELSEWHERE]
    assert missing_rigs(kinds) == [], (
        "a backend is registered (entry point) without a rig: add one to tests/contract/rigs.py"
    )
