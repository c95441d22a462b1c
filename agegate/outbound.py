"""Requests to URLs an admin typed (webhooks), without server-side request forgery.

A request to a typed URL is a request on that person's behalf from inside our network. The
guard is the `ssrfguard` package (its `Policy` and its httpx client): https:// only (http://
when the operator allows it), no credentials in the URL, no control characters; the host is
resolved once, every address it resolves to must be public (its IANA address table: loopback,
private, link-local with the cloud metadata service, shared/CGNAT, multicast, reserved,
documentation, benchmarking, unspecified, with IPv4-mapped, 6to4 and NAT64 forms judged by the
IPv4 address they carry), and the connection goes to the address it checked, so a DNS answer
that changes in between ("DNS rebinding") cannot redirect it, while TLS still verifies the
certificate for the URL's host name (httpcore sends it as SNI). Encoded hosts (`127.1`,
`2130706433`, `0177.0.0.1`) are refused as written. AGEGATE_WEBHOOK_ALLOWED_NETWORKS becomes the
policy's `allowed_networks`; any port may be named (the policy's default is 80 and 443 only).
This is checked at registration (`vet`) and again at every delivery (`post`: a new client, so
a new lookup), and redirects are never followed.

What stays here, because ssrfguard does not do it:
- one deadline for a whole delivery. httpx's timeouts are per phase (a receiver answering one
  byte a second never trips a read timeout) and ssrfguard's connect timeout is per address
  tried (`ssrfguard/_connect.py`: "timeout: Seconds to wait per attempt, not for the
  sequence"), so the request runs under `asyncio.timeout`, which cancels whatever phase it is
  in. The name lookup is the one phase cancellation cannot stop (`socket.getaddrinfo` takes no
  timeout, `ssrfguard/_resolve.py`: "a known denial-of-service surface ... the caller's to
  supervise"; the async client runs it on anyio's worker thread, which stays blocked, and is
  not a daemon), and registration resolves without any client, so the resolver handed to
  ssrfguard (its `resolver=` seam) gives up on a lookup at the deadline, leaving only a daemon
  thread behind. ssrfguard's own `UdpResolver` has a deadline but skips /etc/hosts and search
  domains;
- the reason classes the delivery log shows, mapped from ssrfguard's and httpx's exceptions,
  and the 422 texts at registration (ssrfguard's messages name the addresses and ranges it
  refused, which are never shown): `timeout`, `refused` (no connection: nothing listens, the
  name does not resolve, TLS fails, a reset), `not_http` (a reply that is not HTTP, or whose
  status line or header count is past http.client's limits, which defined this class before),
  `status` (a non-2xx, reported with its code), `blocked` (the URL or an address it resolves to
  is not allowed). Never an address, a port's state beyond it, or the receiver's text.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from ssrfguard import BlockedAddressError, BlockedURLError, Policy, SSRFGuardError, Target, resolve
from ssrfguard import Resolver as Resolver
from ssrfguard.httpx import AsyncClient

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

TIMEOUT = "timeout"
REFUSED = "refused"
NOT_HTTP = "not_http"
STATUS = "status"
BLOCKED = "blocked"

NOT_PUBLIC = ("The host resolves to an address that is not public (loopback, private, "
              "link-local, shared, multicast or reserved).")
# http.client's limits, by which `not_http` was defined before httpx (h11 allows 100 KB for
# the whole head instead).
_MAX_LINE = 65536
_MAX_HEADERS = 100


class UnsafeUrl(ValueError):
    """The URL may not be requested; `str()` says why (for a 422), `reason` is its class."""

    def __init__(self, message: str, reason: str = BLOCKED) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Reply:
    """One request's outcome: a status (any HTTP reply) or the class of failure."""

    status: int | None
    reason: str | None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def _policy(allow_http: bool, networks: Sequence[IPNetwork]) -> Policy:
    return Policy(allowed_schemes=frozenset({"https", "http"} if allow_http else {"https"}),
                  allowed_networks=tuple(networks), allowed_ports=frozenset(range(1, 65536)))


def parse_networks(raw: Sequence[str]) -> tuple[IPNetwork, ...]:
    """CIDRs (`127.0.0.0/8`, `fd00::/8`); a ValueError names the bad one, or says why the
    policy refuses it (a network inside a prefix that carries IPv4 addresses, like NAT64's)."""
    networks = []
    for text in raw:
        try:
            networks.append(ipaddress.ip_network(text.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{text.strip()!r} is not a network (CIDR)") from None
    _policy(False, networks)  # raises a ValueError that names the network
    return tuple(networks)


def _bounded(lookup: Resolver, deadline: float) -> Resolver:
    """`lookup` (getaddrinfo's shape) given up on at `deadline`: getaddrinfo takes no timeout,
    so a name is looked up on a daemon thread that is abandoned when late."""

    def resolver(host: str, port: int, *args: Any) -> list[Any]:
        if len(args) > 3 and args[3] & socket.AI_NUMERICHOST:  # a literal: nothing to wait for
            return list(lookup(host, port, *args))
        result: dict[str, Any] = {}

        def run() -> None:
            try:
                result["answer"] = list(lookup(host, port, *args))
            except BaseException as error:  # noqa: BLE001 - handed to the caller below
                result["error"] = error

        thread = threading.Thread(target=run, name="agegate-resolve", daemon=True)
        thread.start()
        thread.join(max(deadline - time.monotonic(), 0.0))
        if thread.is_alive():
            raise TimeoutError("the name did not resolve in time")
        if "error" in result:
            raise result["error"]
        return list(result["answer"])

    return resolver


class OutboundPolicy:
    """Vets URLs and sends one bounded, non-redirected POST, through ssrfguard."""

    def __init__(self, *, allow_http: bool = False, allowed_networks: Sequence[IPNetwork] = (),
                 resolver: Resolver = socket.getaddrinfo) -> None:
        self.allow_http = allow_http
        self.policy = _policy(allow_http, allowed_networks)
        # getaddrinfo's shape; ssrfguard checks whatever it answers.
        self.resolver = resolver
        # The system's trust store (and SSL_CERT_FILE), as Python's default; hostname checked.
        self.tls = ssl.create_default_context()

    def parse(self, url: str) -> tuple[str, str, int, str]:
        """scheme, host, port, path (with query) of an acceptable URL; UnsafeUrl if not. No
        lookup: a literal address is judged here, a name only by `vet`."""
        target = self._checked(url)
        parts = urlsplit(url)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return target.scheme, target.host, target.port, path

    def _checked(self, url: str) -> Target:
        try:
            return self.policy.check_url(url)
        except BlockedURLError as refused:
            raise UnsafeUrl(self._why(url, refused)) from None

    def vet(self, url: str, timeout: float = 5.0) -> None:
        """Check the URL and every address its host resolves to; UnsafeUrl when any is not
        allowed (reason `blocked`), the name does not resolve (`refused`) or resolving is too
        slow (`timeout`)."""
        target = self._checked(url)
        try:
            resolve(target, policy=self.policy,
                    resolver=_bounded(self.resolver, time.monotonic() + timeout))
        except BlockedAddressError:
            raise UnsafeUrl(NOT_PUBLIC) from None
        except TimeoutError:
            raise UnsafeUrl("The host did not resolve in time.", TIMEOUT) from None
        except (OSError, ValueError):  # socket.gaierror, UnicodeError
            raise UnsafeUrl("The host does not resolve.", REFUSED) from None

    def _why(self, url: str, refused: BlockedURLError) -> str:
        """Our 422 text for one of ssrfguard's URL refusals (whose text names addresses)."""
        if isinstance(refused.__cause__, BlockedAddressError):
            return NOT_PUBLIC
        try:
            parts = urlsplit(url)
            host = parts.hostname
        except ValueError:
            return "The URL is not valid."
        if parts.scheme.lower() not in self.policy.allowed_schemes or not host:
            return ("Use an http:// or https:// URL with a host." if self.allow_http
                    else "Use an https:// URL with a host.")
        if parts.username is not None or parts.password is not None:
            return "Put no credentials in the URL; verify the signature instead."
        try:
            if parts.port == 0:
                return "The port is not valid."
        except ValueError:
            return "The port is not valid."
        if any(ord(c) < 33 or ord(c) == 127 for c in url):
            return "The URL must not contain spaces or control characters."
        return "The host is not a valid name or address."

    def post(self, url: str, body: bytes, headers: dict[str, str],
             timeout: float = 5.0) -> Reply:
        """POST once within `timeout` seconds in all (the reply's body is not read); never
        raises for what the receiver (or its name, or the network) does."""
        deadline = time.monotonic() + timeout
        try:
            status, head_ok = asyncio.run(self._post(url, body, headers, deadline))
        except SSRFGuardError:
            return Reply(None, BLOCKED)
        except Exception as error:  # noqa: BLE001 - every failure is one classified attempt
            return Reply(None, _classify(error, deadline))
        if time.monotonic() > deadline:
            return Reply(None, TIMEOUT)
        if not head_ok:
            return Reply(None, NOT_HTTP)
        return Reply(status, None if 200 <= status < 300 else STATUS)

    async def _post(self, url: str, body: bytes, headers: dict[str, str],
                    deadline: float) -> tuple[int, bool]:
        left = max(deadline - time.monotonic(), 0.0)
        async with asyncio.timeout(left), AsyncClient(
                policy=self.policy, resolver=_bounded(self.resolver, deadline),
                verify=self.tls, trust_env=False, follow_redirects=False,
                timeout=left) as client:
            async with client.stream("POST", url, content=body, headers=headers) as response:
                head_ok = (len(response.reason_phrase) <= _MAX_LINE
                           and len(response.headers.raw) <= _MAX_HEADERS)
                return response.status_code, head_ok


def _classify(error: BaseException, deadline: float) -> str:
    if time.monotonic() >= deadline or isinstance(error, (TimeoutError, httpx.TimeoutException)):
        return TIMEOUT
    if isinstance(error, httpx.ProtocolError):  # not HTTP, or it closed without a reply
        return NOT_HTTP
    if isinstance(error, (httpx.NetworkError, OSError)):  # refused, reset, TLS, no such name
        return REFUSED
    return NOT_HTTP
