"""Which network addresses the ``http`` module may reach (SPEC §4).

A script must not use the service as a springboard into the network it runs
in: by default every address that is not publicly routable is refused —
loopback, private (RFC 1918, carrier-grade NAT 100.64.0.0/10, IPv6 unique local
fc00::/7 and the old site-local fec0::/10), link-local (169.254.0.0/16 and
fe80::/10, which includes the cloud metadata service at 169.254.169.254),
unspecified, multicast, and the reserved / special-purpose ranges (documentation,
benchmarking, 240.0.0.0/4, broadcast, …). IPv6 forms that embed an IPv4 address
(IPv4-mapped ``::ffff:a.b.c.d``, NAT64 ``64:ff9b::/96``, 6to4 ``2002::/16``,
Teredo) are judged by the IPv4 address they carry.

The operator lifts the refusal with ``--http-allow``: each entry is a CIDR
(``10.0.0.0/8``, ``127.0.0.1/32``, ``fd00::/8``) or a host name
(``internal.example.com``; ``*.example.com`` or ``.example.com`` for every name
under a domain). An address inside an allowed CIDR is permitted; a URL whose host
name is allowed may reach whatever that name resolves to.

Checking and connecting use the same addresses (no DNS rebinding)
----------------------------------------------------------------------
A check that resolves a name and then lets the HTTP client resolve it again is
worthless: a hostile DNS server answers the first lookup with a public address
and the second with ``127.0.0.1``. So the HTTP client never resolves anything
itself. Its connection pool is built on :class:`PinnedNetworkBackend`, an
``httpcore`` network backend whose ``connect_tcp(host, port)`` — the single place
where the client opens a socket — obtains the addresses of ``host`` from this
policy and connects to those IP literals only:

* When the ``http`` module has just checked the URL (:meth:`AddressPolicy.check_url`,
  which runs before anything else so that a refused request never opens a
  socket), it pins the checked addresses for the duration of that request in a
  context variable (:func:`pinned`); ``connect_tcp`` uses exactly those.
* Otherwise (a request made without a pin) ``connect_tcp`` resolves and checks
  the name itself, in the same call that then connects.

Either way the socket goes to an address that passed the check, and TLS is still
verified against the host *name* (``httpcore`` passes the URL's host name as
``server_hostname``; only the TCP connect is pinned), so certificates keep
working. A pooled keep-alive connection is reused only for the same
``(scheme, host, port)`` and was itself opened to a checked address. Proxies are
not used (a proxy would do its own resolution): :class:`PinnedTransport` and the
``http`` module's client are created with ``trust_env=False``, so ``HTTP_PROXY``
and friends are ignored.

``tests/runtime/modules/test_http.py::test_connects_to_the_checked_address_not_a_second_lookup``
shows it: a fake resolver that answers 127.0.0.1 first and a private address
afterwards gets exactly one lookup, and the socket goes to 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import ipaddress
import socket
import ssl
from typing import Iterable, Iterator, Sequence

import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ALLOW_FLAG = "--http-allow"
METADATA_ADDRESSES = frozenset({ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")})

_net = ipaddress.ip_network
# (network, reason) — the first match names the reason; order matters only for the message.
_FORBIDDEN: tuple[tuple[IPNetwork, str], ...] = (
    (_net("127.0.0.0/8"), "loopback"),
    (_net("::1/128"), "loopback"),
    (_net("0.0.0.0/32"), "unspecified"),
    (_net("::/128"), "unspecified"),
    (_net("0.0.0.0/8"), "reserved ('this network')"),
    (_net("169.254.0.0/16"), "link-local"),
    (_net("fe80::/10"), "link-local"),
    (_net("224.0.0.0/4"), "multicast"),
    (_net("ff00::/8"), "multicast"),
    (_net("10.0.0.0/8"), "private"),
    (_net("172.16.0.0/12"), "private"),
    (_net("192.168.0.0/16"), "private"),
    (_net("100.64.0.0/10"), "private (carrier-grade NAT)"),
    (_net("fc00::/7"), "private (unique local)"),
    (_net("fec0::/10"), "private (site-local)"),
    (_net("64:ff9b:1::/48"), "private (local-use NAT64)"),
    (_net("255.255.255.255/32"), "broadcast"),
)

_NAT64 = _net("64:ff9b::/96")


class PolicyError(Exception):
    """A URL or address the ``http`` module refuses; ``str()`` is the message for the script."""


def forbidden_reason(address: IPAddress) -> str | None:
    """Why ``address`` is refused by default (``"loopback"``, ``"private"``, …), or ``None``."""
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        reason = forbidden_reason(embedded)
        return f"{reason} (IPv4 {embedded} inside IPv6)" if reason else None
    for network, reason in _FORBIDDEN:
        if address.version == network.version and address in network:
            if address in METADATA_ADDRESSES:
                return f"{reason} (the cloud metadata service)"
            return reason
    if address.is_multicast:
        return "multicast"
    if address.is_reserved or not address.is_global:
        return "reserved (not globally routable)"
    return None


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    if address.version != 6:
        return None
    assert isinstance(address, ipaddress.IPv6Address)
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]  # the client's address; the server half is a public relay
    return None


def _normalize_host(host: str) -> str:
    return host.strip().rstrip(".").lower()


def _parse_ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


class AddressPolicy:
    """The address rules of the ``http`` module.

    ``allow``: the operator's ``--http-allow`` entries — CIDRs (or single
    addresses) and host names (``*.example.com`` / ``.example.com`` match every
    name under ``example.com``) that are permitted although they would be refused.
    Raises ``ValueError`` for an entry that is neither.
    """

    def __init__(self, allow: Sequence[str] = ()) -> None:
        self._networks: list[IPNetwork] = []
        self._names: set[str] = set()
        self._suffixes: list[str] = []
        for raw in allow:
            entry = raw.strip()
            if not entry:
                continue
            try:
                self._networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
                continue
            except ValueError:
                pass
            name = _normalize_host(entry)
            if name.startswith("*."):
                name = name[1:]
            label = name[1:] if name.startswith(".") else name
            if not label or not all(_valid_label(part) for part in label.split(".")):
                raise ValueError(f"{ALLOW_FLAG}: {raw!r} is neither a CIDR nor a host name")
            if name.startswith("."):
                self._suffixes.append(name)
            else:
                self._names.add(name)
        self.allow: tuple[str, ...] = tuple(allow)

    def __repr__(self) -> str:
        return f"AddressPolicy(allow={list(self.allow)!r})"

    # ------------------------------------------------------------ pure checks
    def host_allowed(self, host: str) -> bool:
        """Whether ``host`` (a name) is on the operator's allow-list."""
        name = _normalize_host(host)
        return name in self._names or any(name.endswith(s) for s in self._suffixes)

    def address_allowed(self, address: IPAddress | str) -> bool:
        """Whether a connection to ``address`` is permitted (ignoring host names)."""
        return self._refusal(_as_ip(address)) is None

    def _refusal(self, address: IPAddress) -> str | None:
        reason = forbidden_reason(address)
        if reason is None:
            return None
        embedded = _embedded_ipv4(address)
        for candidate in (address, embedded):
            if candidate is not None and any(
                candidate.version == n.version and candidate in n for n in self._networks
            ):
                return None
        return reason

    def check_addresses(self, host: str, addresses: Iterable[IPAddress | str]) -> list[str]:
        """Raise :class:`PolicyError` unless every one of ``addresses`` (those of ``host``)
        is permitted; return them as strings, in order, without duplicates."""
        result: list[str] = []
        literal = _parse_ip(host) is not None
        host_ok = not literal and self.host_allowed(host)
        for raw in addresses:
            address = _as_ip(raw)
            if not host_ok:
                reason = self._refusal(address)
                if reason is not None:
                    where = f"address {address}" if literal else f"address {address} of {host}"
                    raise PolicyError(
                        f"http: {where} is {reason}; the operator can allow it with {ALLOW_FLAG}"
                    )
            text = str(address)
            if text not in result:
                result.append(text)
        if not result:
            raise PolicyError(f"http: {host} has no address")
        return result

    # ------------------------------------------------------------ resolution
    async def resolve(self, host: str, port: int) -> list[str]:
        """The checked addresses of ``host``: an IP literal as is, a name through the
        event loop's ``getaddrinfo``. Refused if *any* address is forbidden, so that a
        name with one public and one private address cannot be used either."""
        host = host.strip("[]")
        literal = _parse_ip(host)
        if literal is not None:
            return self.check_addresses(host, [literal])
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
        except (socket.gaierror, UnicodeError) as exc:
            raise PolicyError(f"http: cannot resolve host {host!r}: {_gai_message(exc)}") from None
        addresses = []
        for family, _type, _proto, _canon, sockaddr in infos:
            if family not in (socket.AF_INET, socket.AF_INET6):
                continue
            text = sockaddr[0]
            addresses.append(ipaddress.ip_address(text.split("%", 1)[0]))
        return self.check_addresses(host, addresses)

    async def check_url(self, url: str | httpx.URL) -> list[str]:
        """Check a URL before any connection: scheme http/https, a host, and every
        address the host resolves to permitted. Returns those addresses."""
        target = parse_url(url)
        return await self.resolve(url_host(target), url_port(target))


def _valid_label(label: str) -> bool:
    return 0 < len(label) <= 63 and all(c.isalnum() or c in "-_" for c in label) and not label.startswith("-")


def _as_ip(address: IPAddress | str) -> IPAddress:
    if isinstance(address, str):
        return ipaddress.ip_address(address.strip("[]").split("%", 1)[0])
    return address


def _gai_message(exc: BaseException) -> str:
    if isinstance(exc, socket.gaierror) and len(exc.args) >= 2:
        return str(exc.args[1])
    return str(exc) or type(exc).__name__


def parse_url(url: str | httpx.URL) -> httpx.URL:
    """Parse and validate a URL for the ``http`` module (``PolicyError`` if unusable)."""
    if isinstance(url, httpx.URL):
        target = url
    else:
        if not isinstance(url, str) or not url.strip():
            raise PolicyError("http: the URL must be a non-empty string")
        try:
            target = httpx.URL(url.strip())
        except (httpx.InvalidURL, ValueError, TypeError) as exc:
            raise PolicyError(f"http: invalid URL {url!r}: {exc}") from None
    if target.scheme not in ("http", "https"):
        shown = target.scheme or "(none)"
        raise PolicyError(f"http: unsupported URL scheme {shown!r} in {str(url)!r} (only http and https)")
    if not target.host:
        raise PolicyError(f"http: invalid URL {str(url)!r}: no host")
    return target


def url_host(url: httpx.URL) -> str:
    """The host as it goes on the wire (IDNA-encoded), which is what ``httpcore`` connects to."""
    return url.raw_host.decode("ascii")


def url_port(url: httpx.URL) -> int:
    return url.port or (443 if url.scheme == "https" else 80)


# ---------------------------------------------------------------- pinning
_PINS: contextvars.ContextVar[dict[tuple[str, int], list[str]] | None] = contextvars.ContextVar(
    "traitor_http_pins", default=None
)


@contextlib.contextmanager
def pinned(host: str, port: int, addresses: Sequence[str]) -> Iterator[None]:
    """Within this block (this task and what it awaits), connections to ``host:port``
    go to ``addresses`` — addresses that :class:`AddressPolicy` has just checked."""
    pins = dict(_PINS.get() or {})
    pins[(_normalize_host(host.strip("[]")), port)] = list(addresses)
    token = _PINS.set(pins)
    try:
        yield
    finally:
        _PINS.reset(token)


class PinnedNetworkBackend(httpcore.AsyncNetworkBackend):
    """An ``httpcore`` network backend that connects only to checked IP literals.

    ``connect_tcp`` is where ``httpcore`` opens every socket (plain and TLS alike;
    TLS is started afterwards on the returned stream with the URL's host name for
    SNI and certificate checks). See the module docstring.
    """

    def __init__(self, policy: AddressPolicy, backend: httpcore.AsyncNetworkBackend | None = None) -> None:
        self.policy = policy
        self._backend = backend or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        key = (_normalize_host(host.strip("[]")), port)
        addresses = (_PINS.get() or {}).get(key)
        if addresses is None:
            addresses = await self.policy.resolve(host, port)
        last: Exception | None = None
        for address in addresses:
            try:
                return await self._backend.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(self, path: str, timeout: float | None = None, socket_options=None):  # type: ignore[no-untyped-def]
        raise PolicyError("http: unix sockets are not allowed")

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


class PinnedTransport(httpx.AsyncHTTPTransport):
    """``httpx.AsyncHTTPTransport`` whose connection pool uses :class:`PinnedNetworkBackend`.

    httpx does not take a network backend, so the ``httpcore`` pool it builds is
    replaced by one built here with the same parameters and our backend. The check
    below makes an httpx upgrade that changes this fail loudly rather than silently
    bypass the policy. No proxy, no environment (``trust_env=False``).
    """

    def __init__(
        self,
        policy: AddressPolicy,
        *,
        limits: httpx.Limits | None = None,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=20)
        super().__init__(trust_env=False, limits=limits, verify=verify)
        if not isinstance(getattr(self, "_pool", None), httpcore.AsyncConnectionPool):  # pragma: no cover
            raise RuntimeError("httpx.AsyncHTTPTransport no longer keeps its httpcore pool in _pool")
        self.backend = PinnedNetworkBackend(policy)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify, trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=self.backend,
        )
