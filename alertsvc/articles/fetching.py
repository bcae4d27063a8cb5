"""Fetching feeds safely: the address guard, redirects, one deadline and a size cap.

Fetching treats every feed URL as hostile: only http(s), the host resolved and refused if
it is a private, loopback, link-local or otherwise non-public address (unless
``FEEDS_ALLOW_PRIVATE_ADDRESSES``), every redirect checked the same way and counted, one
deadline for the whole fetch, and the body streamed and abandoned at ``FEEDS_MAX_BYTES``
(counted after decompression, so a gzip bomb stops there too). Conditional GET
(``If-None-Match`` / ``If-Modified-Since``) makes an unchanged feed a 304. Nothing here
touches the database.

The address check resolves the host just before each request; httpx resolves it again to
connect, so a DNS server that answers differently within that gap (DNS rebinding) is not
stopped. Feeds are added by operators, which bounds the risk.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

REDIRECTS = frozenset({301, 302, 303, 307, 308})
PERMANENT_REDIRECTS = frozenset({301, 308})
ACCEPT = (
    "application/rss+xml, application/atom+xml, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.1"
)


class FeedError(Exception):
    """A feed could not be fetched or read. The message is for an operator."""


class RefusedURL(FeedError):
    """A URL the service will not fetch (scheme or address)."""


@dataclass(frozen=True)
class FetchSettings:
    timeout: float
    max_bytes: int
    max_redirects: int
    allow_private: bool
    user_agent: str

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> FetchSettings:
        return cls(
            timeout=float(config["FEEDS_TIMEOUT_SECONDS"]),
            max_bytes=int(config["FEEDS_MAX_BYTES"]),
            max_redirects=int(config["FEEDS_MAX_REDIRECTS"]),
            allow_private=bool(config["FEEDS_ALLOW_PRIVATE_ADDRESSES"]),
            user_agent=f"alertsvc feed reader (+{config['BASE_URL']})",
        )


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def check_url(url: str, *, allow_private: bool) -> None:
    """Raise :class:`RefusedURL` unless ``url`` is http(s) to a host we may fetch from."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise RefusedURL(f"not a valid URL: {url!r}") from error
    if not parts.scheme:
        raise RefusedURL(f"{url!r} is not a web address (http or https)")
    if parts.scheme.lower() not in ("http", "https"):
        raise RefusedURL(f"only http and https feeds can be fetched, not {parts.scheme}:")
    host = parts.hostname
    if not host:
        raise RefusedURL(f"no host in {url!r}")
    if allow_private:
        return
    default_port = 443 if parts.scheme.lower() == "https" else 80
    try:
        addresses = {
            info[4][0]
            for info in socket.getaddrinfo(host, port or default_port, type=socket.SOCK_STREAM)
        }
    except (socket.gaierror, UnicodeError) as error:
        raise FeedError(f"cannot resolve {host}: {error}") from error
    refused = sorted(address for address in addresses if not _is_public(address))
    if refused:
        raise RefusedURL(
            f"{host} resolves to a private, loopback or reserved address ({', '.join(refused)})"
        )


@dataclass
class Fetched:
    """A fetch's outcome: a 200 with its body, or a 304 with none."""

    status: int
    url: str
    body: bytes = b""
    etag: str | None = None
    last_modified: str | None = None
    content_type: str | None = None
    # Where the feed now lives, when every redirect on the way was permanent (301, 308).
    moved_to: str | None = None


def fetch_feed(
    url: str,
    settings: FetchSettings,
    *,
    etag: str | None = None,
    last_modified: str | None = None,
) -> Fetched:
    """GET a feed under the rules in the module docstring; raise :class:`FeedError` if not."""
    deadline = time.monotonic() + settings.timeout
    headers = {"User-Agent": settings.user_agent, "Accept": ACCEPT}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    current = url
    permanent = True  # every redirect so far was 301 or 308
    try:
        with httpx.Client(
            timeout=httpx.Timeout(settings.timeout), follow_redirects=False, trust_env=False
        ) as client:
            for _hop in range(settings.max_redirects + 1):
                check_url(current, allow_private=settings.allow_private)
                with client.stream("GET", current, headers=headers) as response:
                    moved_to = current if permanent and current != url else None
                    if response.status_code == 304:
                        return Fetched(304, current, moved_to=moved_to)
                    if response.status_code in REDIRECTS:
                        location = response.headers.get("location")
                        if not location:
                            raise FeedError(f"HTTP {response.status_code} with no Location")
                        permanent = permanent and response.status_code in PERMANENT_REDIRECTS
                        current = urljoin(current, location)
                        continue
                    if response.status_code != 200:
                        raise FeedError(
                            f"HTTP {response.status_code} {response.reason_phrase} from {current}"
                        )
                    body = _read_capped(response, settings.max_bytes, deadline, settings.timeout)
                    return Fetched(
                        200,
                        current,
                        body,
                        etag=response.headers.get("etag"),
                        last_modified=response.headers.get("last-modified"),
                        content_type=response.headers.get("content-type"),
                        moved_to=moved_to,
                    )
    except httpx.TimeoutException as error:
        raise FeedError(
            f"no answer within {settings.timeout:g} s ({type(error).__name__})"
        ) from error
    except httpx.HTTPError as error:
        raise FeedError(f"{type(error).__name__}: {error}") from error
    raise FeedError(f"more than {settings.max_redirects} redirects (last to {current})")


def _read_capped(response: httpx.Response, limit: int, deadline: float, timeout: float) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise FeedError(f"the feed is larger than the {limit:,}-byte limit ({declared} bytes)")
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > limit:
            raise FeedError(f"the feed is larger than the {limit:,}-byte limit")
        if time.monotonic() > deadline:
            raise FeedError(f"the feed took longer than {timeout:g} s to download")
        chunks.append(chunk)
    return b"".join(chunks)
