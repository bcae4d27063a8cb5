"""A local HTTP server that answers SES v2 ``SendEmail`` and ``GetAccount`` as SES does.

    python bench/_ses_sink.py --port PORT

A sink for throughput measurements only: it accepts every message, keeps nothing but a
count and, for each message, when it arrived and its Message-ID header (for the
queue-to-sink latency). It is one asyncio process with just enough HTTP/1.1 (keep-alive,
Content-Length bodies) for botocore, so that the sink costs the machine as little as
possible and the same for the floor and for alertsvc.

Control endpoints (not SES's): ``GET /_sink/stats`` gives the count and the first and
last arrival times; ``GET /_sink/arrivals`` gives ``[[time, message_id], ...]``;
``POST /_sink/reset`` empties both. With ``--keep-raw`` it also keeps every message as
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


class Sink:
    def __init__(self, keep_raw: bool = False, latency: float = 0.0) -> None:
        self.arrivals: list[tuple[float, str]] = []
        self.ids = itertools.count(1)
        self.keep_raw = keep_raw
        self.latency = latency
        self.raw: list[tuple[bytes, bytes]] = []  # (To header, message), with --keep-raw

    def send_email(self, body: bytes) -> bytes:
        arrived = time.time()
        raw = base64.b64decode(json.loads(body)["Content"]["Raw"]["Data"])
        headers = raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
        found = MESSAGE_ID.search(headers)
        self.arrivals.append((arrived, found.group(1).decode() if found else ""))
        if self.keep_raw:
            to = TO.search(headers)
            self.raw.append((to.group(1) if to else b"", raw))
        return json.dumps({"MessageId": f"sink-{next(self.ids):010d}"}).encode()

    def stats(self) -> bytes:
        times = [arrived for arrived, _ in self.arrivals]
        return json.dumps(
            {
                "count": len(times),
                "first": min(times) if times else None,
                "last": max(times) if times else None,
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
                status, payload = self.route(method, path, body)
                if self.latency and path == "/v2/email/outbound-emails":
                    await asyncio.sleep(self.latency)
                writer.write(
                    f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
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

    def route(self, method: str, target: str, body: bytes) -> tuple[str, bytes]:
        path, _, query = target.partition("?")
        if method == "POST" and path == "/v2/email/outbound-emails":
            return "200 OK", self.send_email(body)
        if method == "GET" and path == "/v2/email/account":
            return "200 OK", json.dumps(ACCOUNT).encode()
        if method == "GET" and path == "/_sink/stats":
            return "200 OK", self.stats()
        if method == "GET" and path == "/_sink/arrivals":
            return "200 OK", json.dumps(self.arrivals).encode()
        if method == "GET" and path == "/_sink/messages":
            return "200 OK", self.messages(query)
        if method == "POST" and path == "/_sink/reset":
            self.arrivals.clear()
            self.raw.clear()
            return "200 OK", b"{}"
        return "404 Not Found", b'{"message": "not a route of the sink"}'


async def serve(host: str, port: int, keep_raw: bool, latency: float) -> None:
    sink = Sink(keep_raw, latency)
    server = await asyncio.start_server(sink.handle, host, port, backlog=1024)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--keep-raw", action="store_true", help="keep each message as sent")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before answering")
    options = parser.parse_args()
    asyncio.run(serve(options.host, options.port, options.keep_raw, options.latency))


if __name__ == "__main__":
    main()
