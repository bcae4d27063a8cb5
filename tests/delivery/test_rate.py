"""The fleet's send rate: SEND_RATE is never exceeded, shared by workers through Redis.

The arrival time of each email is its ``.eml`` file's modification time (``st_mtime_ns``),
written by the file transport just after the rate allowed the send. The write lags the
permit by a Redis round trip and whatever the busy 2-core machine does to the sending
thread meanwhile (seen: a full second of arrivals holding 63 where permits held 60), and
the kernel stamps files from a coarse clock. So the windows are checked ``SLACK`` shorter
than a second: any window of ``1 - SLACK`` seconds of arrivals lies inside a one-second
window of permits, which the limiter holds to ``rate + burst``, as long as no write lags its
permit by more than ``SLACK``. ``limits``' fixed window, put in place of the moving one,
fails this check (66 and 71 in two runs).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from limits import RateLimitItemPerSecond

from alertsvc.cli import build_cli
from alertsvc.config import ConfigurationError
from alertsvc.delivery.rate import SendRate, effective_rate, rate_items
from alertsvc.delivery.transports import FileTransport
from alertsvc.delivery.worker import Worker
from alertsvc.models import OutboxStatus
from tests.delivery.helpers import statuses
from tests.factories import queue_manage_links
from tests.processes import alertsvc_env, exit_code, kill, output, start

REDIS_URL = os.environ.get("ALERTSVC_TEST_REDIS_URL", "redis://127.0.0.1:6379/3")
SLACK = 0.2


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix of this test's own, so parallel runs never share a count; its keys are
    deleted afterwards."""
    prefix = f"alertsvc-test-{uuid.uuid4().hex}"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(f"*{prefix}*"))
    if keys:
        client.delete(*keys)
    client.close()


def arrivals(mail_dir: Path) -> list[float]:
    """When each email arrived, in seconds, earliest first."""
    return sorted(path.stat().st_mtime_ns / 1e9 for path in mail_dir.glob("*.eml"))


def busiest_window(times: list[float], seconds: float) -> int:
    """The most arrivals in any window ``[t, t + seconds)``, wherever it starts."""
    most, first = 0, 0
    for last, moment in enumerate(times):
        while times[first] <= moment - seconds:
            first += 1
        most = max(most, last - first + 1)
    return most


def test_busiest_window_counts_a_window_wherever_it_starts():
    assert busiest_window([0.0, 0.5, 0.99, 1.0, 1.4], 1.0) == 4  # 0.5 .. 1.4
    assert busiest_window([0.0, 1.0, 2.0], 1.0) == 1
    assert busiest_window([], 1.0) == 0


def test_two_workers_sharing_redis_never_exceed_the_rate_plus_burst(
    app, database_url, tmp_path, redis_prefix
):
    rate, burst, count = 50, 10, 325
    queue_manage_links(app, count)
    mail = tmp_path / "mail"
    env = alertsvc_env(
        database_url,
        mail,
        SEND_RATE=str(rate),
        SEND_BURST=str(burst),
        REDIS_URL=REDIS_URL,
        REDIS_KEY_PREFIX=redis_prefix,
        WORKER_BATCH_SIZE="40",
        WORKER_CONCURRENCY="8",
    )
    logs = [tmp_path / "worker-1.log", tmp_path / "worker-2.log"]
    processes = [start(["worker", "--burst"], env, log) for log in logs]
    try:
        for process, log in zip(processes, logs, strict=True):
            assert exit_code(process, 120, log) == 0, output(log)
    finally:
        for process in processes:
            kill(process)

    assert set(statuses(app).values()) == {OutboxStatus.SENT}
    times = arrivals(mail)
    assert len(times) == count
    assert all("across every worker in Redis" in output(log) for log in logs)
    assert busiest_window(times, 1.0 - SLACK) <= rate + burst
    # Not merely never exceeded: the limit is real. 325 emails at 50 a second take 6 s
    # (the first 100 in the first two seconds, burst included); n / rate - 1 leaves room.
    assert times[-1] - times[0] >= count / rate - 1 - SLACK


def test_in_memory_the_rate_holds_one_worker(app_with, mail_dir):
    rate, count = 25, 60
    flask_app = app_with(SEND_RATE=rate, WORKER_CONCURRENCY=4, WORKER_BATCH_SIZE=20)
    queue_manage_links(flask_app, count)

    totals = Worker(flask_app, burst=True).run()

    assert totals.sent == count
    times = arrivals(mail_dir)
    assert len(times) == count
    assert busiest_window(times, 1.0 - SLACK) <= rate
    assert times[-1] - times[0] >= count / rate - 1 - SLACK


class ProviderLimitedTransport(FileTransport):
    """The file transport reporting a provider's own limit, as SES's GetAccount does."""

    def __init__(self, directory: Path, max_rate: float | None) -> None:
        super().__init__(directory)
        self.max_rate = max_rate
        self.asked = 0

    def max_send_rate(self) -> float | None:
        self.asked += 1
        return self.max_rate


def permits(rate: SendRate, count: int, threads: int = 4) -> list[float]:
    """``count`` permits taken by ``threads`` threads, as a worker's senders take them."""
    times: list[float] = []
    lock = threading.Lock()

    def take(share: int) -> None:
        for _ in range(share):
            assert rate.acquire()
            with lock:
                times.append(time.time())

    workers = [threading.Thread(target=take, args=(count // threads,)) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    return sorted(times)


def send_rate(transport, **settings) -> SendRate:
    config = {"SEND_RATE": None, "SEND_BURST": 0, "SES_ACCOUNT_REFRESH_SECONDS": 300}
    return SendRate.from_config({**config, **settings}, transport, threading.Event())


def test_the_providers_lower_limit_wins_and_is_read_again_when_due(tmp_path):
    transport = ProviderLimitedTransport(tmp_path, max_rate=20.0)
    rate = send_rate(transport, SEND_RATE=100, SES_ACCOUNT_REFRESH_SECONDS=0.5)

    times = permits(rate, 40)
    assert busiest_window(times, 1.0) <= 20
    assert times[-1] - times[0] >= 40 / 20 - 1

    transport.max_rate = None  # the provider's limit is lifted: ours applies
    time.sleep(0.6)
    assert rate.acquire()
    assert rate.items == [RateLimitItemPerSecond(100, 1)]
    assert transport.asked >= 2


def test_many_sending_threads_count_in_memory_without_an_error(tmp_path):
    """``limits``' memory storage let two threads start its expiry timer at once: the send
    failed with "threads can only be started once" and the worker exited (seen in CI with
    four workers busy on two cores). The timer ends and is made again every 10 ms; with
    Python switching threads as often as it can, five seconds of that found the race in
    five runs of six without the lock."""
    rate = send_rate(FileTransport(tmp_path), SEND_RATE=100_000)
    deadline = time.monotonic() + 5
    failures: list[BaseException] = []

    def take() -> None:
        try:
            while time.monotonic() < deadline and not failures:
                assert rate.acquire()
                time.sleep(0.0005)  # lets the storage's expiry timer end between sends
        except BaseException as error:
            failures.append(error)

    interval, excepthook, unraisablehook = (
        sys.getswitchinterval(),
        threading.excepthook,
        sys.unraisablehook,
    )
    sys.setswitchinterval(1e-6)
    # A timer started twice may fail in its own thread instead (KeyError in _bootstrap).
    threading.excepthook = sys.unraisablehook = lambda hook: failures.append(hook.exc_value)
    try:
        threads = [threading.Thread(target=take) for _ in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        sys.setswitchinterval(interval)
        threading.excepthook, sys.unraisablehook = excepthook, unraisablehook
    assert not failures, failures[:3]


def test_no_rate_and_no_provider_limit_sends_at_once(tmp_path):
    rate = send_rate(FileTransport(tmp_path))
    rate.stop.set()  # even a stopping worker finishes its batch when there is no rate
    assert rate.items == []
    assert all(rate.acquire() for _ in range(1000))


def test_a_stopping_worker_stops_waiting_for_its_turn(tmp_path):
    rate = send_rate(FileTransport(tmp_path), SEND_RATE=1)
    assert rate.acquire()
    stopper = threading.Timer(0.3, rate.stop.set)
    stopper.start()
    assert rate.acquire() is False  # would have waited a second
    stopper.join()


@pytest.mark.parametrize(
    ("configured", "burst", "provider", "expected"),
    [
        (50, 0, None, (50, 0)),
        (50, 10, None, (50, 10)),
        (50, 10, 55, (50, 5)),  # the provider's limit caps the burst too
        (50, 10, 14, (14, 0)),
        (None, 10, 14, (14, 0)),
        (None, 0, None, None),
    ],
)
def test_effective_rate_is_the_lower_with_the_burst_under_the_providers_limit(
    configured, burst, provider, expected
):
    assert effective_rate(configured, burst, provider) == expected


def test_rate_items_round_down_and_take_a_burst_back_from_the_next_seconds():
    per = RateLimitItemPerSecond
    assert rate_items(50, 0) == [per(50, 1)]
    assert rate_items(2.5, 0) == [per(2, 1)]
    assert rate_items(0.5, 0) == [per(1, 2)]
    assert rate_items(50, 10) == [per(100, 2), per(60, 1)]
    assert rate_items(14, 100) == [per(126, 9), per(114, 1)]


def run_worker(flask_app, *args: str):
    return flask_app.test_cli_runner().invoke(build_cli(), ["worker", *args])


def assert_one_line(result, message: str) -> None:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert result.output.strip().splitlines() == [f"Error: {message}"], result.output


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"SEND_RATE": "fast"},
            "ALERTSVC_SEND_RATE must be a number of emails per second above 0 (such as 14), "
            "not 'fast'; leave it unset for no limit of ours",
        ),
        (
            {"SEND_RATE": 0},
            "ALERTSVC_SEND_RATE must be a number of emails per second above 0 (such as 14), "
            "not 0; leave it unset for no limit of ours",
        ),
        (
            {"SEND_RATE": 10, "SEND_BURST": -1},
            "ALERTSVC_SEND_BURST must be a number of emails of 0 or more, not -1",
        ),
        (
            {"SEND_RATE": 10, "SEND_BURST": "lots"},
            "ALERTSVC_SEND_BURST must be a number of emails of 0 or more, not 'lots'",
        ),
    ],
)
def test_bad_rate_settings_are_refused_at_start_with_one_line(app_with, settings, message):
    with pytest.raises(ConfigurationError) as refused:
        app_with(**settings)
    assert str(refused.value) == message


def test_unreachable_redis_stops_the_worker_with_one_line(app_with):
    queue_manage_links(app_with(), 1)
    result = run_worker(
        app_with(SEND_RATE=10, REDIS_URL="redis://:secret@127.0.0.1:9/0"), "--burst"
    )
    assert_one_line(
        result,
        "cannot reach Redis at redis://127.0.0.1:9/0 (ALERTSVC_REDIS_URL), which holds "
        "the fleet's send rate: start Redis or correct the setting",
    )
    assert set(statuses(app_with()).values()) == {OutboxStatus.QUEUED}, "nothing was sent"


def test_send_rate_from_the_environment_is_checked_at_start(app, database_url, tmp_path):
    log = tmp_path / "worker.log"
    env = alertsvc_env(database_url, tmp_path / "mail", SEND_RATE="-5")
    process = start(["worker", "--burst"], env, log)
    try:
        assert exit_code(process, 60, log) == 1
    finally:
        kill(process)
    assert output(log).strip().splitlines()[-1] == (
        "Error: ALERTSVC_SEND_RATE must be a number of emails per second above 0 (such as 14), "
        "not -5; leave it unset for no limit of ours"
    )


class CuttableLink:
    """A TCP link to the real Redis that the test can cut and mend, as a network failure
    or a Redis restart would: while cut, connections are dropped and new ones refused."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.up = threading.Event()
        self.up.set()
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            if not self.up.is_set():
                client.close()
                continue
            upstream = socket.create_connection(self.target)
            with self.lock:
                self.sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self.up.clear()
        with self.lock:
            for end in self.sockets:
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)
            self.sockets.clear()

    def mend(self) -> None:
        self.up.set()

    def close(self) -> None:
        self.cut()
        self.server.close()


def test_lost_redis_holds_sending_until_it_is_back(tmp_path, redis_prefix, caplog):
    """Fail closed: with the shared count out of reach nothing is sent, however long; when
    Redis is back, sending goes on within the rate."""
    caplog.set_level(logging.INFO, logger="alertsvc.delivery.rate")
    target = redis.Redis.from_url(REDIS_URL).connection_pool.connection_kwargs
    link = CuttableLink((target["host"], target["port"]))
    try:
        rate = send_rate(
            FileTransport(tmp_path),
            SEND_RATE=10,
            REDIS_URL=f"redis://127.0.0.1:{link.port}/{target['db']}",
            REDIS_KEY_PREFIX=redis_prefix,
        )
        assert rate.acquire()

        link.cut()
        allowed = threading.Event()
        sender = threading.Thread(target=lambda: rate.acquire() and allowed.set())
        sender.start()
        # Not sent while Redis is away: watched for a while (3 retries), not timed.
        assert not allowed.wait(2.0)
        assert "lost Redis at redis://127.0.0.1:" in caplog.text

        link.mend()
        assert allowed.wait(15), "sending went on once Redis was back"
        sender.join(timeout=5)
        assert "Redis is back" in caplog.text
    finally:
        link.close()


def test_the_shared_count_keeps_redis_time_not_each_workers_clock(
    tmp_path, redis_prefix, monkeypatch
):
    """Two workers on machines whose clocks differ (or a sending thread held up between
    reading its clock and reaching Redis, on a busy machine) share one rate: the window is
    measured on Redis's clock, so a worker whose clock runs ahead gets no extra sends."""
    settings = {"SEND_RATE": 2, "REDIS_URL": REDIS_URL, "REDIS_KEY_PREFIX": redis_prefix}
    here = send_rate(FileTransport(tmp_path), **settings)
    elsewhere = send_rate(FileTransport(tmp_path), **settings)
    assert here.acquire() and here.acquire()  # the rate's two sends for this second

    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 1.5)  # the other machine's clock
    stopper = threading.Timer(0.5, elsewhere.stop.set)
    stopper.start()
    assert elsewhere.acquire() is False, "a third send within the second"
    stopper.join()


def permits_for(rate: SendRate, seconds: float, threads: int = 4) -> list[float]:
    """Permits taken by ``threads`` threads, as fast as allowed, for ``seconds``."""
    times: list[float] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def take() -> None:
        while time.monotonic() < deadline:
            if rate.acquire():
                with lock:
                    times.append(time.time())

    workers = [threading.Thread(target=take, daemon=True) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=seconds + 30)
    return sorted(times)


def test_lost_redis_with_a_fallback_share_sends_that_share_until_it_is_back(
    tmp_path, redis_prefix, caplog
):
    """With SEND_RATE_FALLBACK_WORKERS a worker goes on alone at rate / N while Redis is
    lost, and counts in Redis again once it is back."""
    caplog.set_level(logging.INFO, logger="alertsvc.delivery.rate")
    target = redis.Redis.from_url(REDIS_URL).connection_pool.connection_kwargs
    link = CuttableLink((target["host"], target["port"]))
    client = redis.Redis.from_url(REDIS_URL)
    try:
        rate = send_rate(
            FileTransport(tmp_path),
            SEND_RATE=10,
            SEND_RATE_FALLBACK_WORKERS=2,
            REDIS_URL=f"redis://127.0.0.1:{link.port}/{target['db']}",
            REDIS_KEY_PREFIX=redis_prefix,
        )
        assert rate.acquire()

        link.cut()
        client.delete(*client.scan_iter(f"*{redis_prefix}*"))  # as a restarted Redis has
        alone = permits_for(rate, 3.5)
        assert "sending alone at 5/s" in caplog.text
        assert len(alone) >= 5, "sending went on"
        assert busiest_window(alone, 1.0) <= 5, "at this worker's share"
        assert not list(client.scan_iter(f"*{redis_prefix}*")), "counted in memory"

        link.mend()
        shared = permits_for(rate, 3.0)
        assert "Redis is back" in caplog.text
        assert shared, "sending went on"
        assert list(client.scan_iter(f"*{redis_prefix}*")), "counted in Redis again"
        # Shared sends are counted on Redis's clock and recorded here on this one: SLACK,
        # as for the other shared counts in this file.
        assert busiest_window(sorted(alone + shared), 1.0 - SLACK) <= 10
    finally:
        link.close()
        client.close()


def test_the_fallback_share_must_be_a_whole_number_of_workers(app_with):
    with pytest.raises(ConfigurationError, match="SEND_RATE_FALLBACK_WORKERS must be"):
        app_with(SEND_RATE_FALLBACK_WORKERS=0)
    assert app_with(SEND_RATE_FALLBACK_WORKERS=3).config["SEND_RATE_FALLBACK_WORKERS"] == 3
