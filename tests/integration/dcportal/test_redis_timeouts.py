"""A Redis that hangs (accepts, never answers) must not hold a request forever: every Redis
connection of the portal (cache, rate limits, RQ) carries connect and socket timeouts."""

import socket
import threading

import django_rq
import pytest
import redis
from django.conf import settings

from dcportal.settings import with_redis_timeouts


def test_timeouts_are_added_unless_the_url_sets_its_own():
    assert with_redis_timeouts("redis://127.0.0.1:6379/3") == (
        "redis://127.0.0.1:6379/3?socket_connect_timeout=2&socket_timeout=10"
    )
    url = with_redis_timeouts("unix:///run/redis.sock?db=2&socket_timeout=1")
    kwargs = redis.Redis.from_url(url).connection_pool.connection_kwargs
    assert kwargs["path"] == "/run/redis.sock"
    assert (kwargs["db"], kwargs["socket_timeout"], kwargs["socket_connect_timeout"]) == (2, 1, 2)


def test_queues_and_cache_connect_with_timeouts():
    queue_kwargs = django_rq.get_queue("default").connection.connection_pool.connection_kwargs
    assert queue_kwargs["socket_timeout"] == 10
    assert queue_kwargs["socket_connect_timeout"] == 2
    assert "socket_timeout=10" in settings.CACHES["default"]["LOCATION"]


@pytest.fixture
def silent_redis():
    """A TCP server that accepts connections and never says a word."""
    server = socket.create_server(("127.0.0.1", 0))
    accepted, stop = [], threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"redis://127.0.0.1:{server.getsockname()[1]}/0"
    stop.set()
    thread.join()
    for connection in accepted:
        connection.close()
    server.close()


def test_a_hanging_redis_times_out(silent_redis):
    client = redis.Redis.from_url(with_redis_timeouts(silent_redis, connect=1, answer=0.5))
    with pytest.raises(redis.TimeoutError):
        client.ping()
