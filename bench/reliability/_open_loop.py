"""An open-loop HTTP load generator: requests start at a fixed rate, whatever the answers.

wrk is closed-loop (a connection sends its next request when the last is answered), so a
slow server is sent less and its slowness hides in the rate. Here request ``i`` is due at
``start + i / rate`` and starts then, however many are still waiting; its latency counts
from when it was due, so time spent queued behind slow answers is counted too.

One asyncio loop and one httpx client; bounded by the number of requests and the timeout.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import httpx


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


async def _load(
    base_url: str, requests: list[Request], rate: float, timeout_s: float
) -> LoadFigures:
    figures: dict[str, EndpointFigures] = {}
    for request in requests:
        figures.setdefault(request.endpoint, EndpointFigures())
    loop = asyncio.get_running_loop()
    limits = httpx.Limits(max_connections=512, max_keepalive_connections=64)
    most_late = 0.0

    async def one(client: httpx.AsyncClient, request: Request, due: float) -> None:
        mine = figures[request.endpoint]
        failure = None
        try:
            response = await client.request(
                request.method, request.path, content=request.body, headers=request.headers
            )
            if not 200 <= response.status_code < 400:
                failure = str(response.status_code)
        except httpx.TimeoutException:
            failure = "timeout"
        except httpx.HTTPError as error:
            failure = type(error).__name__
        mine.latencies_ms.append((loop.time() - due) * 1000)
        if failure is None:
            mine.ok += 1
        else:
            mine.errors[failure] = mine.errors.get(failure, 0) + 1

    async with httpx.AsyncClient(
        base_url=base_url, timeout=timeout_s, limits=limits, follow_redirects=False
    ) as client:
        start = loop.time()
        tasks = []
        last_started = start
        for index, request in enumerate(requests):
            due = start + index / rate
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            last_started = loop.time()
            most_late = max(most_late, last_started - due)
            tasks.append(asyncio.create_task(one(client, request, due)))
        await asyncio.gather(*tasks)
    return LoadFigures(figures, len(requests), last_started - start, most_late * 1000)


def open_loop(
    base_url: str, requests: Iterable[Request], rate: float, timeout_s: float = 5.0
) -> LoadFigures:
    """Start each of ``requests`` at ``rate`` per second; wait for every answer (or its
    timeout). Returns the figures per endpoint."""
    return asyncio.run(_load(base_url, list(requests), rate, timeout_s))
