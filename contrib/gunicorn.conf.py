"""gunicorn for dcportal in production (contrib/systemd/dcportal-web.service uses it).

    gunicorn --config contrib/gunicorn.conf.py dcportal.wsgi

Tunable from the environment file (/etc/dcportal/dcportal.env):
    DCPORTAL_BIND      where gunicorn listens (default 127.0.0.1:8000; nginx proxies to it).
                       Several addresses: comma separated.
    WEB_CONCURRENCY    worker processes (default: 2 per CPU + 1, at most 12)
    GUNICORN_CMD_ARGS  any other gunicorn option; it overrides this file (e.g. "--threads 8")
"""

import multiprocessing
import os

bind = [item.strip() for item in os.environ.get("DCPORTAL_BIND", "127.0.0.1:8000").split(",")]
workers = int(os.environ.get("WEB_CONCURRENCY") or min(2 * multiprocessing.cpu_count() + 1, 12))
# Threads keep a worker busy on slow clients and on long requests (exports, previews) without
# a process each; the database connection is per thread (CONN_MAX_AGE keeps it 60 s).
worker_class = "gthread"
threads = 4

# Longer than nginx's proxy_read_timeout (120 s), so nginx answers 504 before gunicorn kills a
# worker in the middle of a request.
timeout = 150
graceful_timeout = 30
keepalive = 75
# Recycle workers now and then: a slow leak in a library never grows without bound.
max_requests = 5000
max_requests_jitter = 500

# nginx writes the access log (with the request id); gunicorn's errors go to the journal.
accesslog = None
errorlog = "-"
loglevel = "info"
# Under systemd the journal timestamps each line; the process title shows in ps and top.
proc_name = "dcportal-web"
# No control socket: it would be made under $HOME, which the unit keeps read-only; systemd
# signals the arbiter (reload: HUP) instead.
control_socket_disable = True
