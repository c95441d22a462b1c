"""Requests to URLs an admin typed (webhooks), without server-side request forgery.

A request to a typed URL is a request on that person's behalf from inside our network. So:
- the URL must be https:// (http:// only when the operator allows it), with a host and no
  credentials;
- its host is resolved, and every address it resolves to must be public (the `ipaddress`
  module's own tests: not loopback, private (RFC 1918, RFC 4193), link-local (169.254/16 with
  the cloud metadata service, fe80::/10), shared (CGNAT 100.64/10), multicast, reserved or
  unspecified), looking through IPv6 forms that carry an IPv4 address (::ffff:a.b.c.d,
  6to4); names like `localhost` and spellings like `127.1`, `2130706433` or `0177.0.0.1` are
  what the resolver makes of them, so they are caught by the same test. An operator allows an
  internal network on purpose with AGEGATE_WEBHOOK_ALLOWED_NETWORKS;
- this is done at registration and again at every delivery, and the delivery connects to the
  address it vetted (never resolving again, so a DNS answer that changes in between, "DNS
  rebinding", cannot redirect it); TLS still verifies the certificate for the URL's host name
  (SNI);
- redirects are never followed, and the whole request (resolution, connection, TLS, sending,
  the reply's status line and headers) has one deadline: a receiver that answers one byte a
  second is cut off at the deadline, not after each read.

What a failed request reports is a short reason class only (never an address, a port's state
beyond it, or the receiver's text): `timeout`, `refused` (no connection: nothing listens, the
name does not resolve, TLS fails), `not_http` (a reply that is not HTTP), `status` (a non-2xx
status, reported with its code), `blocked` (the host now resolves to an address that is not
allowed).
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# host, port -> the addresses it resolves to (strings, as getaddrinfo gives them).
Resolver = Callable[[str, int], list[str]]

TIMEOUT = "timeout"
REFUSED = "refused"
NOT_HTTP = "not_http"
STATUS = "status"
BLOCKED = "blocked"


class UnsafeUrl(ValueError):
    """The URL may not be requested; `str()` says why (for a 422), `reason` is its class."""

    def __init__(self, message: str, reason: str = BLOCKED) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Target:
    """A vetted URL: where to connect (`addresses`) and what to ask for."""

    scheme: str
    host: str
    port: int
    path: str
    addresses: tuple[str, ...]


@dataclass(frozen=True)
class Reply:
    """One request's outcome: a status (any HTTP reply) or the class of failure."""

    status: int | None
    reason: str | None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def parse_networks(raw: Sequence[str]) -> tuple[IPNetwork, ...]:
    """CIDRs (`127.0.0.0/8`, `fd00::/8`); a ValueError names the bad one."""
    networks = []
    for text in raw:
        try:
            networks.append(ipaddress.ip_network(text.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{text.strip()!r} is not a network (CIDR)") from None
    return tuple(networks)


def system_resolver(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for a host (IPv4 and IPv6)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return [str(info[4][0]) for info in infos]


def _embedded_ipv4(address: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 address stands for (mapped ::ffff:a.b.c.d, 6to4), else itself."""
    if isinstance(address, ipaddress.IPv6Address):
        return address.ipv4_mapped or address.sixtofour or address
    return address


def _public(address: IPAddress) -> bool:
    return address.is_global and not (
        address.is_multicast or address.is_reserved or address.is_unspecified
        or address.is_loopback or address.is_link_local or address.is_private)


class OutboundPolicy:
    """Vets URLs and sends one bounded, non-redirected POST to a vetted address."""

    def __init__(self, *, allow_http: bool = False, allowed_networks: Sequence[IPNetwork] = (),
                 resolver: Resolver = system_resolver) -> None:
        self.allow_http = allow_http
        self.allowed_networks = tuple(allowed_networks)
        self.resolver = resolver

    # -- vetting ---------------------------------------------------------------------------
    def allowed(self, text: str) -> bool:
        """Whether one resolved address may be connected to."""
        try:
            address = ipaddress.ip_address(text)
        except ValueError:  # e.g. a scoped IPv6 address (fe80::1%eth0)
            return False
        inner = _embedded_ipv4(address)
        if any(a in net for net in self.allowed_networks for a in {address, inner}
               if a.version == net.version):
            return True
        # An IPv6 form of an IPv4 address is judged by the IPv4 address it reaches.
        return _public(inner)

    def parse(self, url: str) -> tuple[str, str, int, str]:
        """scheme, host, port, path (with query) of an acceptable URL shape; UnsafeUrl if not."""
        try:
            parts = urlsplit(url)
            parts.hostname  # noqa: B018 - raises for a malformed IPv6 literal
        except ValueError:
            raise UnsafeUrl("The URL is not valid.") from None
        schemes = ("https", "http") if self.allow_http else ("https",)
        if parts.scheme not in schemes or not parts.hostname:
            raise UnsafeUrl("Use an https:// URL with a host." if not self.allow_http
                            else "Use an http:// or https:// URL with a host.")
        if parts.username or parts.password:
            raise UnsafeUrl("Put no credentials in the URL; verify the signature instead.")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise UnsafeUrl("The port is not valid.") from None
        if port < 1:
            raise UnsafeUrl("The port is not valid.")
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        if any(ord(c) < 33 or ord(c) == 127 for c in path):
            raise UnsafeUrl("The path must not contain spaces or control characters.")
        return parts.scheme, parts.hostname, port, path

    def vet(self, url: str, timeout: float = 5.0) -> Target:
        """Resolve the URL's host and check every address; UnsafeUrl when any is not allowed
        (reason `blocked`), the name does not resolve (`refused`) or resolving is too slow
        (`timeout`)."""
        scheme, host, port, path = self.parse(url)
        addresses = self._resolve(host, port, timeout)
        if not addresses:
            raise UnsafeUrl("The host does not resolve.", REFUSED)
        if not all(self.allowed(a) for a in addresses):
            raise UnsafeUrl("The host resolves to an address that is not public (loopback, "
                            "private, link-local, shared, multicast or reserved).")
        return Target(scheme, host, port, path, tuple(dict.fromkeys(addresses)))

    def _resolve(self, host: str, port: int, timeout: float) -> list[str]:
        """The resolver's answer within `timeout` (getaddrinfo has no timeout of its own, so it
        runs on a daemon thread that is abandoned when late)."""
        result: dict[str, Any] = {}

        def run() -> None:
            try:
                result["addresses"] = self.resolver(host, port)
            except (OSError, UnicodeError, ValueError):
                result["addresses"] = []

        thread = threading.Thread(target=run, name="agegate-resolve", daemon=True)
        thread.start()
        thread.join(max(timeout, 0.0))
        if "addresses" not in result:
            raise UnsafeUrl("The host did not resolve in time.", TIMEOUT)
        return list(result["addresses"])

    # -- sending ---------------------------------------------------------------------------
    def post(self, url: str, body: bytes, headers: dict[str, str],
             timeout: float = 5.0) -> Reply:
        """POST once within `timeout` seconds in all; never raises for what the receiver (or
        its name, or the network) does."""
        deadline = time.monotonic() + timeout
        try:
            target = self.vet(url, timeout)
        except UnsafeUrl as refused:
            return Reply(None, refused.reason)
        connection = _connection(target, deadline)
        watchdog = threading.Timer(max(deadline - time.monotonic(), 0.0), connection.abort)
        watchdog.daemon = True
        watchdog.start()
        try:
            connection.request("POST", target.path, body=body, headers=headers)
            status = connection.getresponse().status
        except Exception as error:  # noqa: BLE001 - every failure is one classified attempt
            return Reply(None, _classify(error, deadline))
        finally:
            watchdog.cancel()
            connection.finish()
        if time.monotonic() > deadline:
            return Reply(None, TIMEOUT)
        if 200 <= status < 300:
            return Reply(status, None)
        return Reply(status, STATUS)


def _classify(error: BaseException, deadline: float) -> str:
    if time.monotonic() >= deadline or isinstance(error, TimeoutError):
        return TIMEOUT
    if isinstance(error, http.client.HTTPException):  # BadStatusLine, LineTooLong, ...
        return NOT_HTTP
    if isinstance(error, OSError):  # refused, reset, unreachable, TLS (ssl.SSLError)
        return REFUSED
    return NOT_HTTP


class _Guarded:
    """What both connection kinds add: connect only to vetted addresses, each step bounded by
    what is left of the deadline, and an abort the watchdog calls at the deadline."""

    target: Target
    deadline: float
    sock: Any

    def _setup(self, target: Target, deadline: float) -> None:
        self.target = target
        self.deadline = deadline
        self._lock = threading.Lock()
        self._handle: socket.socket | None = None
        self._done = False
        # http.client connects through this attribute: connect to what was vetted, never to
        # what the name resolves to now.
        self._create_connection = self._open

    def _remaining(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("deadline")
        return left

    def _open(self, address: Any, timeout: Any = None, source_address: Any = None
              ) -> socket.socket:
        last: OSError = ConnectionRefusedError("no address")
        for ip in self.target.addresses:
            family = socket.AF_INET6 if ":" in ip else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                sock.settimeout(self._remaining())
                sock.connect((ip, self.target.port))
            except OSError as error:
                sock.close()
                if isinstance(error, TimeoutError):
                    raise
                last = error
                continue
            with self._lock:
                if self._done:
                    sock.close()
                    raise TimeoutError("deadline")
                # A second handle on the same connection: shutting it down unblocks whatever
                # read or write (TLS included) the sending thread is in.
                self._handle = sock.dup()
            sock.settimeout(self._remaining())
            return sock
        raise last

    def abort(self) -> None:
        with self._lock:
            self._done = True
            if self._handle is not None:
                try:
                    self._handle.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def finish(self) -> None:
        with self._lock:
            self._done = True
            if self._handle is not None:
                self._handle.close()
                self._handle = None
        self.close()  # type: ignore[attr-defined]


class _HTTP(_Guarded, http.client.HTTPConnection):
    def __init__(self, target: Target, deadline: float) -> None:
        http.client.HTTPConnection.__init__(self, target.host, target.port,
                                            timeout=max(deadline - time.monotonic(), 0.001))
        self._setup(target, deadline)


class _HTTPS(_Guarded, http.client.HTTPSConnection):
    def __init__(self, target: Target, deadline: float) -> None:
        # The default context verifies the chain and the URL's host name (sent as SNI).
        http.client.HTTPSConnection.__init__(self, target.host, target.port,
                                             timeout=max(deadline - time.monotonic(), 0.001),
                                             context=ssl.create_default_context())
        self._setup(target, deadline)


def _connection(target: Target, deadline: float) -> _HTTP | _HTTPS:
    return _HTTPS(target, deadline) if target.scheme == "https" else _HTTP(target, deadline)
