"""A local HTTP server that answers SES v2 ``SendEmail`` and ``GetAccount`` as SES does.

    python bench/_ses_sink.py --port PORT

A sink for throughput measurements only: it accepts every message, keeps nothing but a
count and, for each message, when it arrived and its Message-ID header (for the
queue-to-sink latency). It is one asyncio process with just enough HTTP/1.1 (keep-alive,
Content-Length bodies) for botocore, so that the sink costs the machine as little as
possible and the same for the floor and for alertsvc.

Control endpoints (not SES's): ``GET /_sink/stats`` gives the count and the first and
last arrival times; ``GET /_sink/arrivals`` gives ``[[time, message_id], ...]``;
``POST /_sink/reset`` empties both.

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

ACCOUNT = {
    "DedicatedIpAutoWarmupEnabled": False,
    "EnforcementStatus": "HEALTHY",
    "ProductionAccessEnabled": True,
    "SendQuota": {"Max24HourSend": 1e9, "MaxSendRate": 100000.0, "SentLast24Hours": 0.0},
    "SendingEnabled": True,
}
MESSAGE_ID = re.compile(rb"^Message-ID:\s*(<[^>\r\n]+>)", re.IGNORECASE | re.MULTILINE)


class Sink:
    def __init__(self) -> None:
        self.arrivals: list[tuple[float, str]] = []
        self.ids = itertools.count(1)

    def send_email(self, body: bytes) -> bytes:
        arrived = time.time()
        raw = base64.b64decode(json.loads(body)["Content"]["Raw"]["Data"])
        headers = raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
        found = MESSAGE_ID.search(headers)
        self.arrivals.append((arrived, found.group(1).decode() if found else ""))
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
                status, payload = self.route(method, path.split("?", 1)[0], body)
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

    def route(self, method: str, path: str, body: bytes) -> tuple[str, bytes]:
        if method == "POST" and path == "/v2/email/outbound-emails":
            return "200 OK", self.send_email(body)
        if method == "GET" and path == "/v2/email/account":
            return "200 OK", json.dumps(ACCOUNT).encode()
        if method == "GET" and path == "/_sink/stats":
            return "200 OK", self.stats()
        if method == "GET" and path == "/_sink/arrivals":
            return "200 OK", json.dumps(self.arrivals).encode()
        if method == "POST" and path == "/_sink/reset":
            self.arrivals.clear()
            return "200 OK", b"{}"
        return "404 Not Found", b'{"message": "not a route of the sink"}'


async def serve(port: int) -> None:
    sink = Sink()
    server = await asyncio.start_server(sink.handle, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(serve(parser.parse_args().port))


if __name__ == "__main__":
    main()
