"""The address policy of the ``http`` module, without any network traffic.

Name resolution is faked where a test needs a name other than ``localhost``; nothing
here opens a socket except the loopback-only connects of ``PinnedNetworkBackend`` tests,
which go to a spy backend.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from typing import Any

import httpcore
import pytest

from traitor.runtime.modules.netpolicy import (
    AddressPolicy,
    PinnedNetworkBackend,
    PolicyError,
    forbidden_reason,
    pinned,
)


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.255", "private"),
        ("192.168.1.1", "private"),
        ("100.64.0.1", "private (carrier-grade NAT)"),
        ("100.127.255.254", "private (carrier-grade NAT)"),
        ("fc00::1", "private (unique local)"),
        ("fd12:3456::1", "private (unique local)"),
        ("fec0::1", "private (site-local)"),
        ("169.254.169.254", "link-local (the cloud metadata service)"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("0.1.2.3", "reserved ('this network')"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("ff02::1", "multicast"),
        ("255.255.255.255", "broadcast"),
        ("240.0.0.1", "reserved (not globally routable)"),
        ("192.0.2.1", "reserved (not globally routable)"),
        ("198.18.0.1", "reserved (not globally routable)"),
        ("2001:db8::1", "reserved (not globally routable)"),
        ("::ffff:127.0.0.1", "loopback (IPv4 127.0.0.1 inside IPv6)"),
        ("::ffff:169.254.169.254", "link-local (the cloud metadata service) (IPv4 169.254.169.254 inside IPv6)"),
        ("64:ff9b::a00:1", "private (IPv4 10.0.0.1 inside IPv6)"),
        ("2002:c0a8:101::1", "private (IPv4 192.168.1.1 inside IPv6)"),
        ("::127.0.0.1", "reserved (not globally routable)"),
        # public addresses
        ("8.8.8.8", None),
        ("1.1.1.1", None),
        ("172.32.0.1", None),
        ("100.128.0.1", None),
        ("2606:4700::1111", None),
        ("64:ff9b::808:808", None),
    ],
)
def test_forbidden_reason(address: str, reason: str | None) -> None:
    assert forbidden_reason(ipaddress.ip_address(address)) == reason


def test_allow_list_cidrs_and_names() -> None:
    policy = AddressPolicy(["127.0.0.1/32", "10.0.0.0/8", "fd00::/8", "internal.example.com", "*.svc.test", ".corp.test"])
    assert policy.address_allowed("127.0.0.1")
    assert not policy.address_allowed("127.0.0.2")
    assert policy.address_allowed("10.200.1.1")
    assert policy.address_allowed("::ffff:10.0.0.1")  # the IPv4 it carries is allowed
    assert not policy.address_allowed("192.168.0.1")
    assert policy.address_allowed("fd00::5")
    assert not policy.address_allowed("::1")
    assert policy.address_allowed("8.8.8.8")
    assert policy.host_allowed("internal.example.com")
    assert policy.host_allowed("Internal.Example.COM.")
    assert not policy.host_allowed("other.example.com")
    assert policy.host_allowed("a.svc.test") and policy.host_allowed("a.b.svc.test")
    assert not policy.host_allowed("svc.test")
    assert policy.host_allowed("x.corp.test")


@pytest.mark.parametrize("entry", ["not a host!", "10.0.0.0/33", "*.", "http://x"])
def test_bad_allow_entries(entry: str) -> None:
    with pytest.raises(ValueError, match="--http-allow"):
        AddressPolicy([entry])


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Names ending in ``.test`` resolve from this table (others raise "not found")."""
    table: dict[str, list[str]] = {}
    real = asyncio.BaseEventLoop.getaddrinfo

    async def getaddrinfo(self: Any, host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and host.endswith(".test"):
            if host not in table:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            return [
                (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
                for a in table[host]
            ]
        return await real(self, host, port, *args, **kwargs)

    monkeypatch.setattr(asyncio.BaseEventLoop, "getaddrinfo", getaddrinfo)
    return table


async def test_check_url_returns_the_checked_addresses(fake_dns: dict[str, list[str]]) -> None:
    fake_dns["public.test"] = ["93.184.216.34", "2606:2800:220:1::1", "93.184.216.34"]
    assert await AddressPolicy().check_url("https://public.test/x") == ["93.184.216.34", "2606:2800:220:1::1"]
    assert await AddressPolicy().check_url("http://8.8.8.8:8080/") == ["8.8.8.8"]
    assert await AddressPolicy().check_url("http://[2606:4700::1111]/") == ["2606:4700::1111"]


async def test_any_forbidden_address_refuses_the_name(fake_dns: dict[str, list[str]]) -> None:
    fake_dns["mixed.test"] = ["93.184.216.34", "10.0.0.5"]
    with pytest.raises(PolicyError, match=r"^http: address 10\.0\.0\.5 of mixed\.test is private; the operator can allow it with --http-allow$"):
        await AddressPolicy().check_url("http://mixed.test/")
    # a CIDR on the allow-list covers that address
    assert await AddressPolicy(["10.0.0.0/8"]).check_url("http://mixed.test/") == ["93.184.216.34", "10.0.0.5"]


async def test_allowed_name_may_resolve_anywhere(fake_dns: dict[str, list[str]]) -> None:
    fake_dns["internal.test"] = ["10.1.1.1", "fd00::1"]
    fake_dns["api.internal.test"] = ["192.168.0.9"]
    policy = AddressPolicy(["internal.test"])
    assert await policy.check_url("http://internal.test/") == ["10.1.1.1", "fd00::1"]
    with pytest.raises(PolicyError, match="192.168.0.9 of api.internal.test is private"):
        await policy.check_url("http://api.internal.test/")
    assert await AddressPolicy(["*.internal.test"]).check_url("http://api.internal.test/") == ["192.168.0.9"]


async def test_localhost_refused_by_default() -> None:
    with pytest.raises(PolicyError, match=r"^http: address (127\.0\.0\.1|::1) of localhost is loopback; the operator can allow it with --http-allow$"):
        await AddressPolicy().check_url("http://localhost:8080/")
    assert "127.0.0.1" in await AddressPolicy(["localhost"]).check_url("http://localhost:8080/")


@pytest.mark.parametrize("url", ["http://2130706433/", "http://0x7f000001/", "http://127.1/", "http://0177.0.0.1/"])
async def test_numeric_forms_of_loopback_are_refused(url: str) -> None:
    # resolved like any name (so caught as loopback), or rejected by the URL parser
    with pytest.raises(PolicyError, match=r"127\.0\.0\.1 of \S+ is loopback|invalid URL"):
        await AddressPolicy().check_url(url)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("file:///etc/passwd", "unsupported URL scheme 'file'"),
        ("gopher://x/", "unsupported URL scheme 'gopher'"),
        ("//example.test/", "unsupported URL scheme '(none)'"),
        ("http:///path", "no host"),
        ("", "non-empty string"),
        (42, "non-empty string"),
    ],
)
async def test_bad_urls(url: Any, message: str) -> None:
    with pytest.raises(PolicyError, match=re.escape(message)):
        await AddressPolicy().check_url(url)


async def test_unresolvable_name(fake_dns: dict[str, list[str]]) -> None:
    with pytest.raises(PolicyError, match=r"^http: cannot resolve host 'nowhere\.test': Name or service not known$"):
        await AddressPolicy().check_url("http://nowhere.test/")


class SpyBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, refuse: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        self.calls: list[tuple[str, int]] = []
        self.refuse = refuse

    async def connect_tcp(self, host: str, port: int, **kwargs: Any) -> Any:
        self.calls.append((host, port))
        if host in self.refuse:
            raise httpcore.ConnectError(f"refused by {host}")
        return f"stream to {host}"

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


async def test_backend_connects_to_checked_addresses_only(fake_dns: dict[str, list[str]]) -> None:
    spy = SpyBackend()
    backend = PinnedNetworkBackend(AddressPolicy(), spy)
    fake_dns["public.test"] = ["93.184.216.34"]
    assert await backend.connect_tcp("public.test", 443) == "stream to 93.184.216.34"
    fake_dns["evil.test"] = ["93.184.216.34", "169.254.169.254"]
    with pytest.raises(PolicyError, match="169.254.169.254 of evil.test is link-local"):
        await backend.connect_tcp("evil.test", 80)
    with pytest.raises(PolicyError, match="127.0.0.1 is loopback"):
        await backend.connect_tcp("127.0.0.1", 80)
    assert spy.calls == [("93.184.216.34", 443)]


async def test_backend_prefers_the_pin_and_tries_each_address(fake_dns: dict[str, list[str]]) -> None:
    spy = SpyBackend(refuse={"2606:2800:220:1::1"})
    backend = PinnedNetworkBackend(AddressPolicy(), spy)
    fake_dns["public.test"] = ["10.0.0.1"]  # what a second lookup would say: never consulted
    with pinned("Public.Test", 443, ["2606:2800:220:1::1", "93.184.216.34"]):
        assert await backend.connect_tcp("public.test", 443) == "stream to 93.184.216.34"
        # the pin is for that host and port only
        with pytest.raises(PolicyError):
            await backend.connect_tcp("public.test", 80)
    assert spy.calls == [("2606:2800:220:1::1", 443), ("93.184.216.34", 443)]
    with pytest.raises(PolicyError, match="10.0.0.1 of public.test is private"):
        await backend.connect_tcp("public.test", 443)  # outside the block the pin is gone


async def test_backend_refuses_unix_sockets() -> None:
    with pytest.raises(PolicyError, match="unix sockets"):
        await PinnedNetworkBackend(AddressPolicy(), SpyBackend()).connect_unix_socket("/var/run/docker.sock")
