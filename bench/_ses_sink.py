"""A local HTTP server that answers SES v2 ``SendEmail`` and ``GetAccount`` as SES does.

    python bench/_ses_sink.py --port PORT [--throttle F] [--slow F] [--slow-seconds S]

By default a sink for throughput measurements: it accepts every message, keeps nothing but
a count and, for each message, when it arrived and its Message-ID header (for the
queue-to-sink latency). It is one asyncio process with just enough HTTP/1.1 (keep-alive,
Content-Length bodies) for botocore, so that the sink costs the machine as little as
possible and the same for the floor and for alertsvc.

For ``make reliability`` it can misbehave as SES does under load: ``--throttle F`` answers
that fraction of ``SendEmail`` calls, at random, with SES v2's throttling error (HTTP 429,
``x-amzn-ErrorType: TooManyRequestsException``, a JSON ``message``: what botocore parses
into ``ClientError`` code ``TooManyRequestsException``), and accepts nothing from them;
``--slow F`` accepts another fraction only after ``--slow-seconds`` (2 s by default).

Control endpoints (not SES's): ``GET /_sink/stats`` gives the count, the first and last
arrival times and how many calls were throttled and slow; ``GET /_sink/arrivals`` gives
``[[time, message_id], ...]`` of the messages accepted; ``GET /_sink/calls`` gives
``[[time, message_id, outcome], ...]`` of every ``SendEmail`` call (``outcome``: ``sent``,
``slow`` or ``throttled``; ``time``: when the request arrived); ``POST /_sink/reset``
empties them all. With ``--keep-raw`` it also keeps every message as
sent, and ``GET /_sink/messages?to=ADDRESS`` gives those addressed to ADDRESS (base64 of
the raw message, oldest first), for a scenario that follows a link in an email.
``--host`` binds another address than loopback (a network namespace's veth address);
``--latency S`` answers each ``SendEmail`` S seconds after it arrived (and was counted), as
SES across the internet does, so that a send is in flight for a while.

Not a benchmark itself (the leading underscore keeps ``bench/run.py`` from running it).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import json
import random
import re
import time
from urllib.parse import parse_qs

ACCOUNT = {
    "DedicatedIpAutoWarmupEnabled": False,
    "EnforcementStatus": "HEALTHY",
    "ProductionAccessEnabled": True,
    "SendQuota": {"Max24HourSend": 1e9, "MaxSendRate": 100000.0, "SentLast24Hours": 0.0},
    "SendingEnabled": True,
}
MESSAGE_ID = re.compile(rb"^Message-ID:\s*(<[^>\r\n]+>)", re.IGNORECASE | re.MULTILINE)
TO = re.compile(rb"^To:\s*([^\r\n]*)", re.IGNORECASE | re.MULTILINE)
# SES v2 (rest-json) names the error in this header; botocore reads the code from it.
THROTTLED_HEADERS = (
    "x-amzn-ErrorType: TooManyRequestsException:http://internal.amazon.com/coral/"
    "com.amazon.coral.service/\r\n"
)
THROTTLED_BODY = json.dumps({"message": "Maximum sending rate exceeded."}).encode()


class Sink:
    def __init__(
        self,
        keep_raw: bool = False,
        latency: float = 0.0,
        throttle: float = 0.0,
        slow: float = 0.0,
        slow_seconds: float = 2.0,
        seed: int | None = None,
    ) -> None:
        self.arrivals: list[tuple[float, str]] = []
        self.calls: list[tuple[float, str, str]] = []
        self.ids = itertools.count(1)
        self.keep_raw = keep_raw
        self.latency = latency
        self.raw: list[tuple[bytes, bytes]] = []  # (To header, message), with --keep-raw
        self.throttle = throttle
        self.slow = slow
        self.slow_seconds = slow_seconds
        self.random = random.Random(seed)

    async def send_email(self, body: bytes) -> tuple[str, bytes, str]:
        """(status, JSON payload, extra headers) for one ``SendEmail`` call."""
        arrived = time.time()
        raw = base64.b64decode(json.loads(body)["Content"]["Raw"]["Data"])
        headers = raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
        found = MESSAGE_ID.search(headers)
        message_id = found.group(1).decode() if found else ""
        draw = self.random.random()
        if draw < self.throttle:
            self.calls.append((arrived, message_id, "throttled"))
            return "429 Too Many Requests", THROTTLED_BODY, THROTTLED_HEADERS
        slow = draw < self.throttle + self.slow
        self.calls.append((arrived, message_id, "slow" if slow else "sent"))
        self.arrivals.append((arrived, message_id))
        if self.keep_raw:
            to = TO.search(headers)
            self.raw.append((to.group(1) if to else b"", raw))
        if slow:
            await asyncio.sleep(self.slow_seconds)
        return "200 OK", json.dumps({"MessageId": f"sink-{next(self.ids):010d}"}).encode(), ""

    def stats(self) -> bytes:
        times = [arrived for arrived, _ in self.arrivals]
        outcomes = [outcome for _, _, outcome in self.calls]
        return json.dumps(
            {
                "count": len(times),
                "first": min(times) if times else None,
                "last": max(times) if times else None,
                "throttled": outcomes.count("throttled"),
                "slow": outcomes.count("slow"),
            }
        ).encode()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                request_line, *header_lines = head.decode("latin-1").split("\r\n")
                method, path, _ = request_line.split(" ", 2)
                length = 0
                for line in header_lines:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value.strip())
                body = await reader.readexactly(length) if length else b""
                extra = ""
                if method == "POST" and path.partition("?")[0] == "/v2/email/outbound-emails":
                    status, payload, extra = await self.send_email(body)
                    if self.latency:
                        await asyncio.sleep(self.latency)
                else:
                    status, payload = self.route(method, path)
                writer.write(
                    f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n{extra}"
                    f"x-amzn-RequestId: sink\r\nContent-Length: {len(payload)}\r\n\r\n".encode()
                    + payload
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def messages(self, query: str) -> bytes:
        address = parse_qs(query).get("to", [""])[0].encode().lower()
        return json.dumps(
            [
                base64.b64encode(raw).decode()
                for to, raw in self.raw
                if address and address in to.lower()
            ]
        ).encode()

    def route(self, method: str, target: str) -> tuple[str, bytes]:
        path, _, query = target.partition("?")
        if method == "GET" and path == "/v2/email/account":
            return "200 OK", json.dumps(ACCOUNT).encode()
        if method == "GET" and path == "/_sink/stats":
            return "200 OK", self.stats()
        if method == "GET" and path == "/_sink/arrivals":
            return "200 OK", json.dumps(self.arrivals).encode()
        if method == "GET" and path == "/_sink/calls":
            return "200 OK", json.dumps(self.calls).encode()
        if method == "GET" and path == "/_sink/messages":
            return "200 OK", self.messages(query)
        if method == "POST" and path == "/_sink/reset":
            self.arrivals.clear()
            self.calls.clear()
            self.raw.clear()
            return "200 OK", b"{}"
        return "404 Not Found", b'{"message": "not a route of the sink"}'


async def serve(host: str, port: int, sink: Sink) -> None:
    server = await asyncio.start_server(sink.handle, host, port, backlog=1024)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--keep-raw", action="store_true", help="keep each message as sent")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before answering")
    parser.add_argument(
        "--throttle", type=float, default=0.0, help="fraction of SendEmail calls answered 429"
    )
    parser.add_argument(
        "--slow", type=float, default=0.0, help="fraction of SendEmail calls answered late"
    )
    parser.add_argument("--slow-seconds", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=None, help="for the random draws")
    options = parser.parse_args()
    if min(options.throttle, options.slow) < 0 or options.throttle + options.slow > 1:
        parser.error("--throttle and --slow are fractions adding up to at most 1")
    sink = Sink(
        options.keep_raw,
        options.latency,
        options.throttle,
        options.slow,
        options.slow_seconds,
        options.seed,
    )
    asyncio.run(serve(options.host, options.port, sink))


if __name__ == "__main__":
    main()
