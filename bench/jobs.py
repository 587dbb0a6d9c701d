"""Job pipeline throughput: rows + RQ enqueue per second, then execution per second by one
in-process worker on the real Redis. Run: make bench."""

import os
import time

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dcportal.settings")
django.setup()

import django_rq  # noqa: E402
from django.db import transaction  # noqa: E402
from rq import SimpleWorker  # noqa: E402

from dcportal import jobs  # noqa: E402
from dcportal.models import Job  # noqa: E402

N = int(os.environ.get("BENCH_JOBS", "500"))
queue = django_rq.get_queue("default")
queue.empty()

start = time.perf_counter()
with transaction.atomic():
    created = [jobs.enqueue("dcportal.ping", params={"seconds": 0, "steps": 1}) for _ in range(N)]
enqueue_seconds = time.perf_counter() - start

start = time.perf_counter()
SimpleWorker([queue], connection=queue.connection).work(burst=True)
run_seconds = time.perf_counter() - start

ids = [job.pk for job in created]
done = Job.objects.filter(pk__in=ids, status=Job.Status.SUCCEEDED).count()
print(f"jobs: {N}")
print(f"enqueue (row + on_commit push): {N / enqueue_seconds:8.1f} jobs/s")
print(f"execute (one SimpleWorker):     {N / run_seconds:8.1f} jobs/s  ({done}/{N} succeeded)")
Job.objects.filter(pk__in=ids).delete()
