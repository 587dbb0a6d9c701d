"""BMCs that hang: an IPMI one that takes the packets and never answers, a Redfish one that
accepts the connection and never responds. Their power jobs fail with a timeout after
POWER_TIMEOUT / POWER_RETRY_DEADLINE (set small here), give their slot back, and the jobs
queued behind them on the power queue, against working simulators, still run.

One power slot in all (POWER_MAX_PARALLEL = 1): the jobs behind could not run if a hung job
kept its slot. About 15 s; a real RQ worker, real ipmi_sim and sushy-emulator."""

import socket
import threading

import pytest

from dcportal.models import Job
from inventory import power_services, power_slots
from tests.integration.inventory.power_helpers import make_servers
from tests.peers import sims
from tests.workers import run_burst_worker

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


class SilentBmc:
    """Listens on 127.0.0.1 and never answers: UDP (IPMI) reads and drops every packet, TCP
    (Redfish) accepts every connection and holds it open without a byte."""

    def __init__(self, kind):
        self.kind = kind
        self.sock = socket.socket(socket.AF_INET, kind)
        self.sock.bind((sims.HOST, 0))
        self.port = self.sock.getsockname()[1]
        self.received = 0  # packets (UDP) or connections (TCP) swallowed
        self.held = []
        self.stopped = threading.Event()
        if kind == socket.SOCK_STREAM:
            self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.thread = threading.Thread(target=self._swallow, daemon=True)

    def _swallow(self):
        while not self.stopped.is_set():
            try:
                if self.kind == socket.SOCK_STREAM:
                    connection, _ = self.sock.accept()
                    self.held.append(connection)
                else:
                    self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            self.received += 1

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopped.set()
        self.thread.join(5)
        for connection in self.held:
            connection.close()
        self.sock.close()


@pytest.fixture
def fast_power(settings):
    settings.POWER_TIMEOUT = 1
    settings.POWER_RETRY_DEADLINE = 2
    settings.POWER_MAX_PARALLEL = 1
    return settings


def add_bmc(user, server, driver, address, port, *, username, password, options=None):
    return power_services.create_bmc(
        user=user,
        server=server,
        driver=driver,
        address=address,
        port=port,
        username=username,
        password=password,
        options=options or {},
    )


def test_hanging_bmcs_time_out_and_the_power_queue_keeps_moving(
    fast_power, ipmi_bmcs, redfish_bmcs, admin_user, tenants
):
    ipmi_sim = ipmi_bmcs(1)
    good_ipmi = ipmi_sim[0]
    good_redfish = redfish_bmcs(1, power="On")[0]
    servers = make_servers(
        admin_user, tenants[0], ["hung-ipmi", "hung-redfish", "ok-ipmi", "ok-redfish"]
    )
    hung_ipmi, hung_redfish, ok_ipmi, ok_redfish = servers
    with SilentBmc(socket.SOCK_DGRAM) as silent_udp, SilentBmc(socket.SOCK_STREAM) as silent_tcp:
        add_bmc(
            admin_user, hung_ipmi, "ipmi", sims.HOST, silent_udp.port,
            username="admin", password="Silent-Pass-1",
        )  # fmt: skip
        add_bmc(
            admin_user, hung_redfish, "redfish", sims.HOST, silent_tcp.port,
            username="admin", password="Silent-Pass-2", options={"scheme": "http"},
        )  # fmt: skip
        working = ((ok_ipmi, "ipmi", good_ipmi), (ok_redfish, "redfish", good_redfish))
        for server, driver, target in working:
            add_bmc(
                admin_user, server, driver, target.address, target.port,
                username=target.username, password=target.password, options=dict(target.options),
            )  # fmt: skip
        # The hung BMCs first in the queue, the working ones behind them.
        hung = power_services.enqueue_power(
            user=admin_user, servers=[hung_ipmi, hung_redfish], action="on"
        )
        ok = power_services.enqueue_power(user=admin_user, servers=[ok_ipmi], action="on")
        ok += power_services.enqueue_power(user=admin_user, servers=[ok_redfish], action="status")

        run_burst_worker("power")

        assert silent_udp.received > 0 and silent_tcp.received > 0  # they were asked

    jobs = {job.object_repr: job for job in Job.objects.filter(pk__in=[j.pk for j in hung + ok])}
    for name, port in (("hung-ipmi", silent_udp.port), ("hung-redfish", silent_tcp.port)):
        job = jobs[name]
        assert job.status == Job.Status.FAILED, (name, job.status)
        assert f"BMC 127.0.0.1:{port}" in job.error
        assert "Gave up after" in job.error
        assert "did not answer within 1 s" in job.error
    for name in ("ok-ipmi", "ok-redfish"):
        assert jobs[name].status == Job.Status.SUCCEEDED, (name, jobs[name].error)
    assert ipmi_sim.peer.power == "on"
    assert jobs["ok-redfish"].result["state"] == "on"
    assert not Job.objects.filter(status__in=[Job.Status.QUEUED, Job.Status.RUNNING]).exists()
    connection = power_services.slot_connection()
    assert power_slots.holders(connection, f"{power_services.SLOT_PREFIX}:global") == 0
