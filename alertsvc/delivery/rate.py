"""The fleet's send rate: every worker asks before each send, and together they never send
faster than ``SEND_RATE`` (nor the provider's own limit, SES's ``MaxSendRate``).

The counting is the ``limits`` library's (Flask-Limiter's own), on Redis when
``REDIS_URL`` is set, so that every worker on every machine shares one count, and in memory
otherwise (one process's count: each worker then sends at up to the rate on its own).

Strategy: a **moving window**. ``limits``' fixed window counts per calendar second, so
``rate`` at the end of one second and ``rate`` more at the start of the next put twice the
rate into one second; the moving window keeps a timestamp per send and allows a send only
if fewer than its amount happened in the last window, so no one-second window, wherever it
starts, holds more than the amount. ``SEND_BURST`` lets a second hold up to ``rate + burst``
while the longer-run rate stays ``rate``: a second, longer window (``rate_items``) takes the
burst back from the seconds after it.

On Redis the window is kept on Redis's clock, in one script that looks at every window and
counts the send in all of them at once (``SHARED_WINDOWS``). ``limits``' own moving window
stamps each send with the worker's clock, read before the round trip: a sending thread held
up between reading its clock and reaching Redis (as a busy machine holds threads up) stamps
its send in the past, and a worker whose clock runs ahead sees the window as emptier than
it is; either lets the fleet exceed its rate (its algorithm granted 60 to 98 sends in one
second of Redis's time at 50/s, three processes of 16 threads on the 2-core machine; this
script, 50). In memory (one process, one clock) ``limits`` counts.

**Redis lost.** With ``SEND_RATE_FALLBACK_WORKERS`` (N, the most worker processes the fleet
runs) each worker goes on alone at ``rate / N`` (and ``burst / N``), counted in its own
memory, while Redis is out of reach, and looks for Redis again every
``FALLBACK_PROBE_SECONDS``. Each switch, to its own count and back to the shared one, starts
with a quiet spell: sends counted in one place are then out of every window before sends
counted in the other begin, so no window holds both. Going alone, the longest window (a
second or two) is enough: nobody can count in a Redis that is gone. Going back, the other
workers may still be alone until their next look, so the spell is longer by two looks.
Without the setting a worker sends nothing while Redis is lost: it cannot know its share.
A worker cut off from a Redis the others still reach sends its share on top of their rate:
the fallback is for Redis being lost, not one worker's network.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Mapping
from typing import Any

from limits import RateLimitItem, RateLimitItemPerSecond
from limits.errors import StorageError
from limits.storage import MemoryStorage, RedisStorage, Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter
from redis.commands.core import Script
from redis.exceptions import RedisError

from alertsvc.config import ConfigurationError
from alertsvc.delivery.transports import Transport

log = logging.getLogger(__name__)

# The longest a waiting sender sleeps before looking again (and at whether to stop).
MAX_WAIT_SECONDS = 0.5
# After Redis fails, wait this long before asking again, doubling up to the maximum.
STORAGE_RETRY_SECONDS = 0.5
STORAGE_RETRY_MAX_SECONDS = 5.0
# Redis that does not answer within this long counts as lost.
REDIS_TIMEOUT_SECONDS = 5.0
# While a worker counts alone (Redis lost, SEND_RATE_FALLBACK_WORKERS set), how often it
# looks for Redis again: shorter than the quiet window, so that workers going back to the
# shared count never overlap with one still counting alone.
FALLBACK_PROBE_SECONDS = 0.5

# One send in every moving window, or the seconds until the fullest has room. KEYS: one list
# per window (``limits``' keys and layout: newest send first, at most ``amount`` kept);
# ARGV: amount and seconds of each window in turn. Redis's TIME is the clock.
SHARED_WINDOWS = """
if redis.replicate_commands then redis.replicate_commands() end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local wait = 0
for i, key in ipairs(KEYS) do
    local oldest = redis.call('LINDEX', key, tonumber(ARGV[2 * i - 1]) - 1)
    if oldest then
        local free_in = tonumber(oldest) + tonumber(ARGV[2 * i]) - now
        if free_in > wait then wait = free_in end
    end
end
if wait > 0 then return tostring(wait) end
for i, key in ipairs(KEYS) do
    redis.call('LPUSH', key, string.format('%.6f', now))
    redis.call('LTRIM', key, 0, tonumber(ARGV[2 * i - 1]) - 1)
    redis.call('PEXPIRE', key, math.ceil(tonumber(ARGV[2 * i]) * 1000))
end
return false
"""


def effective_rate(
    configured: float | None, burst: float, provider: float | None
) -> tuple[float, float] | None:
    """(rate, burst) to enforce, or None when nothing limits sending.

    The provider's limit is a ceiling for every second: the burst goes above our rate only
    up to it, and not at all when the provider's rate is the lower.
    """
    if configured is None and provider is None:
        return None
    ceiling = math.inf if provider is None else provider
    rate = min(ceiling, math.inf if configured is None else configured)
    peak = min(ceiling, rate + burst if configured is not None else rate)
    return rate, max(0.0, peak - rate)


def rate_items(rate: float, burst: float) -> list[RateLimitItem]:
    """The moving windows that hold sending to ``rate`` per second, ``rate + burst`` in any
    one second.

    Amounts are whole emails, rounded down (never faster than asked). A rate under one a
    second becomes one email per ``ceil(1 / rate)`` seconds. With a burst, the main window
    is long enough (``1 + burst / rate`` seconds) to take a whole burst back from the
    seconds after it, and a one-second window caps the burst itself.
    """
    window = max(math.ceil(1 / rate), math.ceil(1 + burst / rate))
    items: list[RateLimitItem] = [RateLimitItemPerSecond(max(1, math.floor(rate * window)), window)]
    if burst > 0:
        items.append(RateLimitItemPerSecond(max(1, math.floor(rate + burst)), 1))
    return items


def describe(items: list[RateLimitItem]) -> str:
    return " and ".join(
        f"{item.amount} per {item.multiples} s" if item.multiples > 1 else f"{item.amount}/s"
        for item in items
    )


class SendRate:
    """The fleet's rate as one worker sees it; ``acquire()`` before each send.

    Thread-safe: every sending thread of the worker calls ``acquire``. The provider's limit
    is read from the transport at start and every ``refresh_seconds`` (the SES transport
    answers from GetAccount), and the windows are made again when it changes.
    """

    def __init__(
        self,
        *,
        configured: float | None,
        burst: float,
        transport: Transport,
        storage_uri: str,
        key_prefix: str,
        refresh_seconds: float,
        stop: threading.Event,
        fallback_workers: int | None = None,
    ) -> None:
        self.configured = configured
        self.burst = burst
        self.fallback_workers = fallback_workers
        self.transport = transport
        self.storage_uri = storage_uri
        self.key = (key_prefix, "send")
        self.refresh_seconds = refresh_seconds
        self.stop = stop
        self.lock = threading.Lock()
        self.count_lock = threading.Lock()  # see _try_counted
        self.provider = transport.max_send_rate()
        self.refreshed_at = time.monotonic()
        self.items: list[RateLimitItem] = []
        # This worker's share, counted in its own memory while Redis is lost.
        self.fallback_items: list[RateLimitItem] = []
        self._make_items()
        self.storage: Storage = self._storage()
        self.limiter = MovingWindowRateLimiter(self.storage)
        self.shared: Script | None = (
            self.storage.get_connection().register_script(SHARED_WINDOWS)
            if isinstance(self.storage, RedisStorage)
            else None
        )
        self.fallback_limiter = MovingWindowRateLimiter(MemoryStorage())
        self.storage_failing = False
        # Counting alone (Redis lost, a fallback share set): since when, and when to look
        # for Redis again; None: counting in Redis.
        self.alone_since: float | None = None
        self.next_probe = 0.0
        # No send before this time (time.monotonic()): the quiet window of a switch.
        self.quiet_until = 0.0
        if self.items and not self.storage.check():
            raise ConfigurationError(
                f"cannot reach Redis at {self._where()} (ALERTSVC_REDIS_URL), which holds the "
                "fleet's send rate: start Redis or correct the setting"
            )

    @classmethod
    def from_config(
        cls, config: Mapping[str, Any], transport: Transport, stop: threading.Event
    ) -> SendRate:
        """The worker's rate from its settings (checked and made numbers by ``load_config``);
        unreachable Redis raises ``ConfigurationError`` (one line for the CLI)."""
        return cls(
            configured=config["SEND_RATE"],
            burst=config["SEND_BURST"],
            transport=transport,
            storage_uri=config.get("REDIS_URL") or "memory://",
            key_prefix=str(config.get("REDIS_KEY_PREFIX") or "alertsvc"),
            refresh_seconds=float(config["SES_ACCOUNT_REFRESH_SECONDS"]),
            stop=stop,
            fallback_workers=config.get("SEND_RATE_FALLBACK_WORKERS"),
        )

    def _storage(self) -> Storage:
        if self.storage_uri.startswith("memory://"):
            return storage_from_string(self.storage_uri)
        return storage_from_string(
            self.storage_uri,
            wrap_exceptions=True,
            socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
            socket_timeout=REDIS_TIMEOUT_SECONDS,
        )

    def _where(self) -> str:
        """The storage URI without a password, for messages."""
        scheme, _, rest = self.storage_uri.partition("://")
        return f"{scheme}://{rest.rpartition('@')[2]}"

    def _make_items(self) -> None:
        limit = effective_rate(self.configured, self.burst, self.provider)
        self.items = rate_items(*limit) if limit else []
        shared = not self.storage_uri.startswith("memory://")
        if limit and shared and self.fallback_workers:
            rate, burst = limit
            self.fallback_items = rate_items(
                rate / self.fallback_workers, burst / self.fallback_workers
            )
        else:
            self.fallback_items = []
        if self.items:
            log.info(
                "sending at most %s (%s), counted %s",
                describe(self.items),
                self._why(),
                "across every worker in Redis"
                if not self.storage_uri.startswith("memory://")
                else "in this worker only (set ALERTSVC_REDIS_URL to share it)",
            )

    def _why(self) -> str:
        parts = []
        if self.configured is not None:
            parts.append(f"ALERTSVC_SEND_RATE={self.configured:g}, SEND_BURST={self.burst:g}")
        if self.provider is not None:
            parts.append(f"provider's MaxSendRate {self.provider:g}/s")
        return "; ".join(parts)

    def _refresh(self) -> None:
        """Read the provider's limit again if it is time; remake the windows if it moved."""
        now = time.monotonic()
        if now - self.refreshed_at < self.refresh_seconds:
            return
        with self.lock:
            if now - self.refreshed_at < self.refresh_seconds:
                return
            self.refreshed_at = now
            try:
                provider = self.transport.max_send_rate()
            except Exception:
                log.exception("could not read the provider's send rate; keeping %s", self.provider)
                return
            if provider != self.provider:
                self.provider = provider
                self._make_items()

    def acquire(self) -> bool:
        """Wait until one send is allowed and count it; False if the worker is stopping first.

        With no rate to keep, every send is allowed at once, stopping or not (a stopping
        worker finishes its batch). With one, a stopping worker does not wait its turn: the
        rest of its batch could take ``batch / rate`` seconds, longer than a process
        manager waits; those rows go back to the queue untried. Each wait is short (at most
        ``MAX_WAIT_SECONDS``) so that stopping is seen at once. If Redis cannot be reached,
        the worker counts its share alone when ``SEND_RATE_FALLBACK_WORKERS`` gives one,
        and otherwise sends nothing until Redis is back: the rate is never exceeded because
        the count was lost.
        """
        self._refresh()
        retry = STORAGE_RETRY_SECONDS
        while self.items:
            if self.stop.is_set():
                return False
            quiet = self.quiet_until - time.monotonic()
            if quiet > 0:
                self.stop.wait(min(MAX_WAIT_SECONDS, quiet))
                continue
            if self.alone_since is not None:
                if self._redis_back():
                    continue  # its quiet window first
                wait = self._try_alone()
            else:
                try:
                    wait = self._try(self.items)
                except StorageError as error:
                    self._storage_lost(error.storage_error, retry)
                    if self.alone_since is None:
                        self.stop.wait(retry)
                        retry = min(retry * 2, STORAGE_RETRY_MAX_SECONDS)
                    continue
                if self.storage_failing:
                    self.storage_failing = False
                    log.info("Redis is back: sending again within the fleet's rate")
            if wait is None:
                return True
            # A little jitter, so the threads that all wait for the same free slot do not
            # all ask at the same moment.
            self.stop.wait(min(MAX_WAIT_SECONDS, wait) + random.uniform(0, 0.005))
        return True

    def _quiet_window(self) -> float:
        """Seconds of the longest window: after them, no send counted before is in any."""
        return float(max((item.get_expiry() for item in self.items), default=0))

    def _try_alone(self) -> float | None:
        """``_try`` against this worker's own count of its share."""
        return self._try_counted(self.fallback_limiter, self.fallback_items)

    def _redis_back(self) -> bool:
        """While counting alone: look for Redis (one thread, every
        ``FALLBACK_PROBE_SECONDS``); once it answers, go back to the shared count after a
        quiet window. True when this worker counts in Redis again."""
        now = time.monotonic()
        if now < self.next_probe or not self.lock.acquire(blocking=False):
            return self.alone_since is None
        try:
            if self.alone_since is None:
                return True
            self.next_probe = now + FALLBACK_PROBE_SECONDS
            # The first look may draw a connection Redis dropped when it went away.
            if not (self.storage.check() or self.storage.check()):
                return False
            quiet = self._quiet_window() + 2 * FALLBACK_PROBE_SECONDS
            log.info(
                "Redis is back after %.1f s: counting the fleet's rate there again, after "
                "a quiet %g s",
                now - self.alone_since,
                quiet,
            )
            self.quiet_until = time.monotonic() + quiet
            self.alone_since = None
            self.storage_failing = False
            return True
        finally:
            self.lock.release()

    def _try(self, items: list[RateLimitItem]) -> float | None:
        """Count one send if every window has room (None), else the seconds until one may.

        Looking before counting keeps a send refused by one window from using up room in
        the other; two workers racing between the look and the count can only use up room,
        never exceed a window (each count is atomic and checked). On Redis both happen in
        one script, on Redis's clock.
        """
        if self.shared is not None and isinstance(self.storage, RedisStorage):
            return self._try_shared(self.shared, self.storage, items)
        return self._try_counted(self.limiter, items)

    def _try_counted(
        self, limiter: MovingWindowRateLimiter, items: list[RateLimitItem]
    ) -> float | None:
        """``_try`` through ``limits``, one thread at a time: its memory storage is not safe
        for threads (two can start its expiry timer at once, and the send fails with
        "threads can only be started once")."""
        with self.count_lock:
            for item in items:
                if not limiter.test(item, *self.key):
                    return self._until_free(limiter, item)
            for item in items:
                if not limiter.hit(item, *self.key):
                    return self._until_free(limiter, item)
            return None

    def _try_shared(
        self, script: Script, storage: RedisStorage, items: list[RateLimitItem]
    ) -> float | None:
        keys = [storage.prefixed_key(item.key_for(*self.key)) for item in items]
        windows = [value for item in items for value in (item.amount, item.get_expiry())]
        try:
            wait = script(keys=keys, args=windows)
        except RedisError as error:
            raise StorageError(error) from error
        return None if wait is None else max(0.001, float(wait))

    def _until_free(self, limiter: MovingWindowRateLimiter, item: RateLimitItem) -> float:
        reset = limiter.get_window_stats(item, *self.key).reset_time
        return max(0.001, reset - time.time())

    def _storage_lost(self, error: Exception, retry: float) -> None:
        with self.lock:
            if self.fallback_items and self.alone_since is None:
                self.alone_since = time.monotonic()
                self.next_probe = self.alone_since + FALLBACK_PROBE_SECONDS
                self.quiet_until = self.alone_since + self._quiet_window()
                self.storage_failing = True
                log.error(
                    "lost Redis at %s (%s): sending alone at %s, this worker's share "
                    "(SEND_RATE_FALLBACK_WORKERS=%s), until it is back",
                    self._where(),
                    error,
                    describe(self.fallback_items),
                    self.fallback_workers,
                )
                return
        if self.alone_since is not None:
            return
        if not self.storage_failing:
            self.storage_failing = True
            log.error(
                "lost Redis at %s (%s): not sending until it is back; trying again every "
                "few seconds (set ALERTSVC_SEND_RATE_FALLBACK_WORKERS to send a share "
                "meanwhile)",
                self._where(),
                error,
            )
        else:
            log.debug("Redis still unreachable (%s); next try in %.1f s", error, retry)
