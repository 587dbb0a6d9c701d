"""A real RQ worker run in the test process, on the real Redis."""

import django_rq
import rq


class BurstWorker(rq.SimpleWorker):
    """RQ's in-process worker without its command channel: stopping that listener thread costs
    up to a second per burst, and no test sends a worker commands."""

    def subscribe(self):
        pass

    def unsubscribe(self):
        pass


def run_burst_worker(name="default"):
    """Run every job queued on `name` with a real RQ worker in this process, then return."""
    queue = django_rq.get_queue(name)
    BurstWorker([queue], connection=queue.connection).work(burst=True)
