"""pytest fixtures for real BMC simulators (registered in tests/conftest.py).

    def test_something(ipmi_bmcs, redfish_bmcs):
        targets = ipmi_bmcs(20)                 # 20 ipmi_sim, one BmcTarget each
        targets.peers[0].power                  # "on"/"off" as the simulated machine has it
        nodes = redfish_bmcs(3, power="On")     # one sushy-emulator, 3 systems, scheme http
        nodes.peer.journal()                    # with journal=True: the requests it received

Both are factories: call them as often as needed; every process they start is stopped at the
end of the test, also when it fails. Extra keyword arguments that the simulator does not take
become BmcTarget options (e.g. timeout=2). A missing simulator skips the test, except under CI
(the CI variable set), where that is a failure. For a simulator shared by a module, use the
context managers of tests/peers/sims.py with tmp_path_factory.
"""

import contextlib
import os

import pytest

from tests.peers import sims


class BmcList(list):
    """BmcTargets, with the simulator handles: .peers (one per target) and .peer (the first)."""

    def __init__(self, targets, peers):
        super().__init__(targets)
        self.peers = list(peers)

    @property
    def peer(self):
        return self.peers[0]


def missing_peer(message):
    if os.environ.get("CI"):
        pytest.fail(f"CI is set and {message}", pytrace=False)
    pytest.skip(message)


@pytest.fixture
def ipmi_bmcs(tmp_path_factory):
    """ipmi_bmcs(n=1, *, password=..., **options) -> BmcList of n running ipmi_sim BMCs."""
    with contextlib.ExitStack() as stack:

        def make(n=1, *, password=sims.IPMI_PASSWORD, **options):
            workdir = tmp_path_factory.mktemp("ipmi_sim")
            try:
                running = stack.enter_context(sims.ipmi_sims(n, workdir, password=password))
            except sims.PeerMissing as error:
                missing_peer(str(error))
            return BmcList([sim.target(**options) for sim in running], running)

        yield make


@pytest.fixture
def redfish_bmcs(tmp_path_factory):
    """redfish_bmcs(n=1, *, power="Off", auth=True, tls=None, journal=False, **options) ->
    BmcList of n systems of one running sushy-emulator (.peer is the emulator)."""
    with contextlib.ExitStack() as stack:

        def make(n=1, *, power="Off", auth=True, tls=None, journal=False, **options):
            workdir = tmp_path_factory.mktemp("sushy")
            emulator = sims.SushyEmulator(
                workdir, systems=n, power=power, auth=auth, tls=tls, journal=journal
            )
            try:
                stack.enter_context(emulator)
            except sims.PeerMissing as error:
                missing_peer(str(error))
            targets = emulator.targets(**options)
            return BmcList(targets, [emulator] * len(targets))

        yield make
