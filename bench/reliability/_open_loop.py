"""An open-loop HTTP load generator: requests start at a fixed rate, whatever the answers.

wrk is closed-loop (a connection sends its next request when the last is answered), so a
slow server is sent less and its slowness hides in the rate. Here request ``i`` is due at
``start + i / rate`` and starts then, however many are still waiting; its latency counts
from when it was due, so time spent queued behind slow answers is counted too.

One asyncio loop, a connection per request (gunicorn's sync workers close each one);
bounded by the number of requests and the timeout.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Request:
    endpoint: str  # what the figures are grouped by
    method: str
    path: str
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class EndpointFigures:
    latencies_ms: list[float] = field(default_factory=list)  # of every answer, good or bad
    due_s: list[float] = field(default_factory=list)  # when each was due, from the start
    ok: int = 0  # answered 2xx or 3xx within the timeout
    errors: dict[str, int] = field(default_factory=dict)  # status or failure -> count

    def percentile(self, p: float) -> float:
        """Nearest-rank percentile of the latencies, in milliseconds."""
        if not self.latencies_ms:
            return math.nan
        ordered = sorted(self.latencies_ms)
        return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


@dataclass
class LoadFigures:
    by_endpoint: dict[str, EndpointFigures]
    requests: int
    duration_s: float  # from the first request due to the last one started
    most_late_ms: float  # the generator's worst lag behind a request's due time

    @property
    def rate(self) -> float:
        return (self.requests - 1) / self.duration_s if self.duration_s else 0.0

    @property
    def errors(self) -> int:
        return sum(figures.error_count for figures in self.by_endpoint.values())

    def worst_by_second(self) -> list[float]:
        """The slowest answer among the requests due in each second of the run, in ms."""
        worst: dict[int, float] = {}
        for figures in self.by_endpoint.values():
            for due, latency in zip(figures.due_s, figures.latencies_ms, strict=True):
                worst[int(due)] = max(worst.get(int(due), 0.0), latency)
        return [worst.get(second, 0.0) for second in range(max(worst, default=-1) + 1)]


async def _exchange(host: str, port: int, raw: bytes) -> int:
    """Send one HTTP/1.1 request (``Connection: close``) and read the whole answer; its
    status. One write and no HTTP library: the client's own cost per request stays well
    under a millisecond, so the figures are the server's."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(raw)
        await writer.drain()
        answer = await reader.read()  # to the end: the server closes after answering
    finally:
        writer.close()
    status_line = answer.split(b"\r\n", 1)[0].split()
    if len(status_line) < 2 or not status_line[1].isdigit():
        raise ConnectionError(f"not an HTTP answer: {answer[:40]!r}")
    return int(status_line[1])


def _encode(request: Request, host: str) -> bytes:
    headers = {
        "Host": host,
        "Connection": "close",
        **request.headers,
        "Content-Length": str(len(request.body)),
    }
    head = f"{request.method} {request.path} HTTP/1.1\r\n" + "".join(
        f"{name}: {value}\r\n" for name, value in headers.items()
    )
    return head.encode("latin-1") + b"\r\n" + request.body


async def _load(
    base_url: str, requests: list[Request], rate: float, timeout_s: float
) -> LoadFigures:
    figures: dict[str, EndpointFigures] = {}
    for request in requests:
        figures.setdefault(request.endpoint, EndpointFigures())
    target = urlsplit(base_url)
    host, port = target.hostname or "127.0.0.1", target.port or 80
    encoded = [_encode(request, target.netloc) for request in requests]
    loop = asyncio.get_running_loop()
    most_late = 0.0

    async def one(request: Request, raw: bytes, due: float) -> None:
        mine = figures[request.endpoint]
        failure = None
        try:
            status = await asyncio.wait_for(_exchange(host, port, raw), timeout_s)
            if not 200 <= status < 400:
                failure = str(status)
        except TimeoutError:
            failure = "timeout"
        except OSError as error:
            failure = type(error).__name__
        mine.latencies_ms.append((loop.time() - due) * 1000)
        mine.due_s.append(due - start)
        if failure is None:
            mine.ok += 1
        else:
            mine.errors[failure] = mine.errors.get(failure, 0) + 1

    start = loop.time()
    tasks = []
    last_started = start
    for index, (request, raw) in enumerate(zip(requests, encoded, strict=True)):
        due = start + index / rate
        wait = due - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        last_started = loop.time()
        most_late = max(most_late, last_started - due)
        tasks.append(asyncio.create_task(one(request, raw, due)))
    await asyncio.gather(*tasks)
    return LoadFigures(figures, len(requests), last_started - start, most_late * 1000)


def open_loop(
    base_url: str, requests: Iterable[Request], rate: float, timeout_s: float = 5.0
) -> LoadFigures:
    """Start each of ``requests`` at ``rate`` per second; wait for every answer (or its
    timeout). Returns the figures per endpoint."""
    return asyncio.run(_load(base_url, list(requests), rate, timeout_s))
