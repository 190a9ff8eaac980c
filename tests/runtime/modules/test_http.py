"""The ``http`` host module against real HTTP servers on 127.0.0.1 (never anything else).

Every test runs with ``guard``: the socket layer under httpx refuses to connect to any
non-loopback address and records every connection attempt, so a policy failure can
neither reach the outside nor go unnoticed.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import time
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import anyio
import pytest
import quickjs

from traitor.runtime.modules import CallContext
from traitor.runtime.modules.http import HttpError, HttpSettings, http_module
from traitor.runtime.modules.netpolicy import AddressPolicy, PolicyError, pinned

CTX = CallContext(run_id="run-1", job_id="job-1")
LOOPBACK_ONLY = ("127.0.0.1", "::1")


class Server:
    """A small HTTP/1.1 server on 127.0.0.1; every response closes its connection."""

    def __init__(self) -> None:
        self.connections = 0
        self.requests: list[dict[str, Any]] = []
        self.active = 0
        self.max_active = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        try:
            line = await reader.readline()
            if not line:
                return
            method, target, _ = line.decode("latin-1").split(" ", 2)
            headers: dict[str, str] = {}
            while True:
                raw = await reader.readline()
                if raw in (b"\r\n", b"\n", b""):
                    break
                name, value = raw.decode("latin-1").split(":", 1)
                headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            parts = urlsplit(target)
            query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            request = {"method": method, "path": parts.path, "query": query, "headers": headers, "body": body.decode()}
            self.requests.append(request)
            await self._route(request, writer)
        except (asyncio.CancelledError, ConnectionError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _route(self, req: dict[str, Any], writer: asyncio.StreamWriter) -> None:
        path, query = req["path"], req["query"]

        def send(status: str, body: bytes = b"", headers: dict[str, str] | None = None, length: bool = True) -> None:
            head = [f"HTTP/1.1 {status}", "Connection: close"]
            if length:
                head.append(f"Content-Length: {len(body)}")
            head += [f"{k}: {v}" for k, v in (headers or {}).items()]
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)

        if path == "/echo":
            send("200 OK", json.dumps(req).encode(), {"Content-Type": "application/json", "X-Reply": "yes"})
        elif path == "/status":
            send(query["line"])
        elif path == "/redirect":
            send(f"{query.get('code', '302')} Found", headers={"Location": query["to"]})
        elif path.startswith("/loop/"):
            n = int(path.rsplit("/", 1)[1])
            send("302 Found", headers={"Location": f"/loop/{n + 1}"})
        elif path == "/big":
            send("200 OK", b"x" * int(query["n"]), length=query.get("cl", "1") == "1")
        elif path == "/gzip":
            send("200 OK", gzip.compress(b"\0" * int(query["n"])), {"Content-Encoding": "gzip"})
        elif path == "/latin1":
            send("200 OK", "café".encode("latin-1"), {"Content-Type": "text/plain; charset=iso-8859-1"})
        elif path == "/cookie":
            send("200 OK", b"set", {"Set-Cookie": "sid=secret; Path=/"})
        elif path == "/hang":
            await asyncio.sleep(3600)
        elif path == "/slow":
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            try:
                await asyncio.sleep(float(query.get("s", "0.2")))
            finally:
                self.active -= 1
            send("200 OK", b"done")
        else:
            send("404 Not Found", b"no such path")
        await writer.drain()


@pytest.fixture
async def server():
    srv = Server()
    await srv.start()
    yield srv
    await srv.stop()


class Guard:
    def __init__(self) -> None:
        self.attempts: list[tuple[str, int]] = []


@pytest.fixture(autouse=True)
def guard(monkeypatch: pytest.MonkeyPatch) -> Guard:
    """Record every TCP connect made under httpx and refuse any non-loopback address."""
    record = Guard()
    real = anyio.connect_tcp

    async def connect_tcp(remote_host: Any, remote_port: int, **kwargs: Any) -> Any:
        record.attempts.append((str(remote_host), remote_port))
        if str(remote_host) not in LOOPBACK_ONLY:
            raise OSError(f"test guard: refused to connect to {remote_host}")
        return await real(remote_host, remote_port, **kwargs)

    monkeypatch.setattr(anyio, "connect_tcp", connect_tcp)
    return record


@pytest.fixture
async def settings():
    s = HttpSettings(policy=AddressPolicy(["127.0.0.1/32"]))
    yield s
    await s.close()


def request_fn(settings: HttpSettings):
    return http_module(settings).functions["request"]


# ---------------------------------------------------------------- round trips
async def test_get_round_trip_with_headers(server: Server, settings: HttpSettings) -> None:
    res = await request_fn(settings)(CTX, {"url": f"{server.base}/echo?a=1", "headers": {"X-Test": "yes", "X-N": 5}})
    assert set(res) == {"status", "statusText", "headers", "body", "url"}
    assert res["status"] == 200 and res["statusText"] == "OK"
    assert res["headers"]["x-reply"] == "yes"
    assert res["headers"]["content-type"] == "application/json"
    assert res["url"] == f"{server.base}/echo?a=1"
    seen = json.loads(res["body"])
    assert seen["method"] == "GET" and seen["query"] == {"a": "1"}
    assert seen["headers"]["x-test"] == "yes" and seen["headers"]["x-n"] == "5"
    assert seen["headers"]["user-agent"].startswith("traitor/")
    assert seen["headers"]["host"] == f"127.0.0.1:{server.port}"


async def test_post_round_trip_text_and_json(server: Server, settings: HttpSettings) -> None:
    request = request_fn(settings)
    res = await request(CTX, {"method": "post", "url": f"{server.base}/echo", "body": "plain text",
                              "headers": {"Content-Type": "text/plain"}})
    seen = json.loads(res["body"])
    assert seen["method"] == "POST" and seen["body"] == "plain text"
    assert seen["headers"]["content-type"] == "text/plain"

    res = await request(CTX, {"method": "PUT", "url": f"{server.base}/echo", "body": {"n": 1, "s": "é"}})
    seen = json.loads(res["body"])
    assert seen["method"] == "PUT"
    assert json.loads(seen["body"]) == {"n": 1, "s": "é"}
    assert seen["headers"]["content-type"] == "application/json"


async def test_url_string_is_a_get(server: Server, settings: HttpSettings) -> None:
    res = await request_fn(settings)(CTX, f"{server.base}/echo")
    assert json.loads(res["body"])["method"] == "GET"


async def test_status_text_and_charset(server: Server, settings: HttpSettings) -> None:
    request = request_fn(settings)
    res = await request(CTX, {"url": f"{server.base}/nowhere"})
    assert (res["status"], res["statusText"], res["body"]) == (404, "Not Found", "no such path")
    res = await request(CTX, {"url": f"{server.base}/status?line={quote('299 Fine Indeed')}"})
    assert (res["status"], res["statusText"]) == (299, "Fine Indeed")
    res = await request(CTX, {"url": f"{server.base}/latin1"})
    assert res["body"] == "café"


async def test_cookies_are_not_kept_between_requests(server: Server, settings: HttpSettings) -> None:
    request = request_fn(settings)
    await request(CTX, {"url": f"{server.base}/cookie"})
    res = await request(CallContext(run_id="run-2", job_id="job-2"), {"url": f"{server.base}/echo"})
    assert "cookie" not in json.loads(res["body"])["headers"]


@pytest.mark.parametrize(
    ("opts", "message"),
    [
        (None, "request options must be an object"),
        ({}, "the URL must be a non-empty string"),
        ({"url": "file:///etc/passwd"}, "unsupported URL scheme 'file'"),
        ({"url": "ftp://127.0.0.1/"}, "unsupported URL scheme 'ftp'"),
        ({"url": "http://"}, "no host"),
        ({"url": "http://127.0.0.1/", "method": "GE T"}, "invalid method"),
        ({"url": "http://127.0.0.1/", "headers": {"X": "a\r\nInjected: 1"}}, "line break"),
        ({"url": "http://127.0.0.1/", "headers": {"Bad Name": "1"}}, "invalid header name"),
        ({"url": "http://127.0.0.1/", "headers": ["x"]}, "headers must be an object"),
        ({"url": "http://127.0.0.1/", "timeout": -1}, "timeout must be a positive number"),
    ],
)
async def test_bad_options_are_clear_errors(settings: HttpSettings, guard: Guard, opts: Any, message: str) -> None:
    with pytest.raises((HttpError, PolicyError), match=message) as info:
        await request_fn(settings)(CTX, opts)
    assert str(info.value).startswith("http: ")
    assert guard.attempts == []


async def test_request_body_limit(settings: HttpSettings, guard: Guard) -> None:
    small = HttpSettings(policy=settings.policy, max_request_bytes=10)
    with pytest.raises(HttpError, match="request body of 11 bytes exceeds the limit of 10 bytes"):
        await request_fn(small)(CTX, {"url": "http://127.0.0.1:9/", "method": "POST", "body": "x" * 11})
    assert guard.attempts == []


# ---------------------------------------------------------------- the address policy in the module
@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("10.1.2.3", "private"),
        ("192.168.1.10", "private"),
        ("172.16.5.4", "private"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("169.254.169.254", "link-local (the cloud metadata service)"),
        ("169.254.10.10", "link-local"),
        ("[fe80::1]", "link-local"),
        ("[::1]", "loopback"),
        ("[fd00::1]", "unique local"),
        ("[::ffff:10.0.0.1]", "private"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
    ],
)
async def test_forbidden_addresses_are_refused_before_connecting(guard: Guard, host: str, reason: str) -> None:
    settings = HttpSettings()  # the default policy
    try:
        with pytest.raises(PolicyError, match="the operator can allow it with --http-allow") as info:
            await request_fn(settings)(CTX, {"url": f"http://{host}/latest/meta-data/"})
        assert reason in str(info.value)
        assert guard.attempts == []
    finally:
        await settings.close()


async def test_loopback_refused_by_default(server: Server, guard: Guard) -> None:
    settings = HttpSettings()
    try:
        with pytest.raises(PolicyError, match=r"^http: address 127\.0\.0\.1 is loopback; the operator can allow it with --http-allow$"):
            await request_fn(settings)(CTX, {"url": f"{server.base}/echo"})
        # a name that resolves to a loopback address is refused just the same
        with pytest.raises(PolicyError, match=r"of localhost is loopback"):
            await request_fn(settings)(CTX, {"url": f"http://localhost:{server.port}/echo"})
    finally:
        await settings.close()
    assert server.connections == 0 and guard.attempts == []


async def test_allow_list_hostname_permits(server: Server) -> None:
    settings = HttpSettings(policy=AddressPolicy(["localhost"]))
    try:
        res = await request_fn(settings)(CTX, {"url": f"http://localhost:{server.port}/echo"})
        assert res["status"] == 200
        assert json.loads(res["body"])["headers"]["host"] == f"localhost:{server.port}"
        with pytest.raises(PolicyError, match="127.0.0.1 is loopback"):  # the name, not the address, is allowed
            await request_fn(settings)(CTX, {"url": f"{server.base}/echo"})
    finally:
        await settings.close()


async def test_allow_list_cidr_permits(server: Server, settings: HttpSettings) -> None:
    res = await request_fn(settings)(CTX, {"url": f"{server.base}/echo"})
    assert res["status"] == 200
    with pytest.raises(PolicyError, match="10.0.0.1 is private"):
        await request_fn(settings)(CTX, {"url": "http://10.0.0.1/"})


@pytest.mark.parametrize("name", ["rebind.test", "rébind.test"])
async def test_connects_to_the_checked_address_not_a_second_lookup(
    server: Server, settings: HttpSettings, guard: Guard, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """DNS rebinding: the first lookup says 127.0.0.1 (allowed), every later one a private
    address. The request must go to 127.0.0.1 with a single lookup (also for an IDN name,
    which is looked up in its ASCII form)."""
    lookups: list[str] = []
    loop = asyncio.get_running_loop()
    real = loop.getaddrinfo

    async def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if not str(host).endswith(".test"):
            return await real(host, port, *args, **kwargs)
        lookups.append(host)
        address = "127.0.0.1" if len(lookups) == 1 else "10.9.9.9"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)
    res = await request_fn(settings)(CTX, {"url": f"http://{name}:{server.port}/echo"})
    assert res["status"] == 200
    ascii_name = name.encode("idna").decode()
    assert json.loads(res["body"])["headers"]["host"] == f"{ascii_name}:{server.port}"
    assert lookups == [ascii_name]
    assert guard.attempts == [("127.0.0.1", server.port)]


async def test_pinned_backend_uses_the_pin(server: Server, settings: HttpSettings, guard: Guard) -> None:
    client = settings.client()
    with pinned("pinned.invalid", server.port, ["127.0.0.1"]):
        res = await client.get(f"http://pinned.invalid:{server.port}/echo")
    assert res.status_code == 200
    assert guard.attempts == [("127.0.0.1", server.port)]
    # without a pin the backend resolves and checks by itself: 'localhost' is loopback, not allowed by name
    strict = HttpSettings()
    try:
        with pytest.raises(PolicyError, match="loopback"):
            await strict.client().get(f"http://localhost:{server.port}/echo")
    finally:
        await strict.close()
    assert len(guard.attempts) == 1


# ---------------------------------------------------------------- redirects
async def test_redirects_are_followed(server: Server, settings: HttpSettings) -> None:
    target = quote(f"{server.base}/echo?after=1", safe="")
    res = await request_fn(settings)(CTX, {"url": f"{server.base}/redirect?to={target}"})
    assert res["status"] == 200
    assert res["url"] == f"{server.base}/echo?after=1"
    assert json.loads(res["body"])["query"] == {"after": "1"}


async def test_303_after_post_becomes_get_without_body(server: Server, settings: HttpSettings) -> None:
    res = await request_fn(settings)(
        CTX, {"method": "POST", "url": f"{server.base}/redirect?code=303&to=%2Fecho", "body": "payload"}
    )
    seen = json.loads(res["body"])
    assert seen["method"] == "GET" and seen["body"] == ""


async def test_307_keeps_method_and_body(server: Server, settings: HttpSettings) -> None:
    res = await request_fn(settings)(
        CTX, {"method": "POST", "url": f"{server.base}/redirect?code=307&to=%2Fecho", "body": "payload"}
    )
    seen = json.loads(res["body"])
    assert seen["method"] == "POST" and seen["body"] == "payload"


@pytest.mark.parametrize(
    "target",
    ["http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/admin", "http://[::1]:1/", "file:///etc/passwd"],
)
async def test_redirect_to_a_forbidden_address_is_refused(
    server: Server, settings: HttpSettings, guard: Guard, target: str
) -> None:
    with pytest.raises((PolicyError, HttpError)) as info:
        await request_fn(settings)(CTX, {"url": f"{server.base}/redirect?to={quote(target, safe='')}"})
    assert "operator can allow it" in str(info.value) or "unsupported URL scheme" in str(info.value)
    assert guard.attempts == [("127.0.0.1", server.port)]  # only the allowed first hop


async def test_too_many_redirects(server: Server, settings: HttpSettings) -> None:
    settings.max_redirects = 3
    with pytest.raises(HttpError, match=r"too many redirects \(more than 3\)"):
        await request_fn(settings)(CTX, {"url": f"{server.base}/loop/0"})
    assert [r["path"] for r in server.requests] == ["/loop/0", "/loop/1", "/loop/2", "/loop/3"]


# ---------------------------------------------------------------- limits
@pytest.mark.parametrize("declared", ["1", "0"])
async def test_response_too_large(server: Server, settings: HttpSettings, declared: str) -> None:
    settings.max_response_bytes = 1000
    request = request_fn(settings)
    res = await request(CTX, {"url": f"{server.base}/big?n=1000&cl={declared}"})
    assert len(res["body"]) == 1000
    with pytest.raises(HttpError, match="exceeds the limit of 1000 bytes"):
        await request(CTX, {"url": f"{server.base}/big?n=200000&cl={declared}"})


async def test_decompressed_size_counts(server: Server, settings: HttpSettings) -> None:
    settings.max_response_bytes = 100_000
    with pytest.raises(HttpError, match="exceeds the limit of 100000 bytes"):
        await request_fn(settings)(CTX, {"url": f"{server.base}/gzip?n=5000000"})


async def test_timeout(server: Server) -> None:
    settings = HttpSettings(policy=AddressPolicy(["127.0.0.1/32"]), timeout=0.5)
    try:
        started = time.monotonic()
        with pytest.raises(HttpError, match=r"^http: GET http://127\.0\.0\.1:\d+/hang timed out after 0\.5 s$"):
            await request_fn(settings)(CTX, {"url": f"{server.base}/hang"})
        assert 0.4 < time.monotonic() - started < 3
    finally:
        await settings.close()


async def test_script_timeout_in_milliseconds_is_capped(server: Server, settings: HttpSettings) -> None:
    started = time.monotonic()
    with pytest.raises(HttpError, match="timed out after 0.3 s"):
        await request_fn(settings)(CTX, {"url": f"{server.base}/hang", "timeout": 300})
    assert time.monotonic() - started < 3
    settings.timeout = 0.2
    with pytest.raises(HttpError, match="timed out after 0.2 s"):
        await request_fn(settings)(CTX, {"url": f"{server.base}/hang", "timeout": 60_000})


async def test_per_run_concurrency_cap(server: Server, settings: HttpSettings) -> None:
    settings.max_concurrent_per_run = 2
    request = request_fn(settings)
    results = await asyncio.gather(*(request(CTX, {"url": f"{server.base}/slow?s=0.1"}) for _ in range(10)))
    assert [r["body"] for r in results] == ["done"] * 10
    assert server.max_active == 2
    assert settings._slots == {}  # the run's semaphore is gone once it is idle


async def test_cap_is_per_run(server: Server, settings: HttpSettings) -> None:
    settings.max_concurrent_per_run = 2
    request = request_fn(settings)
    calls = [request(CallContext(run_id=f"run-{i % 2}", job_id="j"), {"url": f"{server.base}/slow?s=0.2"}) for i in range(8)]
    await asyncio.gather(*calls)
    assert server.max_active == 4


async def test_connection_refused_is_a_clear_error(settings: HttpSettings) -> None:
    with socket.socket() as sock:  # a port that nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(HttpError, match=rf"^http: cannot connect to 127\.0\.0\.1:{port} for GET"):
        await request_fn(settings)(CTX, {"url": f"http://127.0.0.1:{port}/"})


async def test_close_and_reopen(server: Server, settings: HttpSettings) -> None:
    request = request_fn(settings)
    await request(CTX, {"url": f"{server.base}/echo"})
    await settings.close()
    await settings.close()
    assert (await request(CTX, {"url": f"{server.base}/echo"}))["status"] == 200


# ---------------------------------------------------------------- the JS side
def js_context(host_js: str) -> quickjs.Context:
    """A bare QuickJS context with a stub ``__host`` and the module's source evaluated."""
    ctx = quickjs.Context()
    ctx.eval(f"var __host = {host_js}; var module = {{ exports: {{}} }}; var out = {{}};")
    ctx.eval(http_module(HttpSettings()).source or "")
    return ctx


def drain(ctx: quickjs.Context) -> Any:
    while ctx.execute_pending_job():
        pass
    return json.loads(ctx.eval("JSON.stringify(out)"))


async def test_callback_form_gets_the_original_object(server: Server, settings: HttpSettings) -> None:
    result = await request_fn(settings)(CTX, {"url": f"{server.base}/status?line={quote('200 OK')}"})
    ctx = js_context(
        "{ request: function (o) { out.sent = o; return Promise.resolve(" + json.dumps(result) + "); } }"
    )
    ctx.eval(
        "var r = module.exports.get('http://example.test/x', function (res) { out.ok = res; out.plain = Object.keys(res); },"
        " function (e) { out.err = String(e); }); out.returned = typeof r;"
    )
    out = drain(ctx)
    assert out["ok"] == {"Status": "200 OK", "StatusCode": 200, "ResponseText": ""}
    assert out["plain"] == ["Status", "StatusCode", "ResponseText"]
    assert out["sent"] == {"url": "http://example.test/x", "method": "GET"}
    assert out["returned"] == "undefined" and "err" not in out


def test_callback_form_error_callback_gets_an_error() -> None:
    ctx = js_context("{ request: function () { return Promise.reject(new Error('http: address 10.0.0.1 is private')); } }")
    ctx.eval(
        "module.exports.get('http://10.0.0.1/', function () { out.ok = true; },"
        " function (e) { out.isError = e instanceof Error; out.message = e.message; });"
    )
    assert drain(ctx) == {"isError": True, "message": "http: address 10.0.0.1 is private"}


def test_promise_forms_request_post_fetch() -> None:
    reply = {"status": 201, "statusText": "Created", "headers": {"content-type": "application/json"},
             "body": '{"id": 7}', "url": "http://x.test/"}
    ctx = js_context("{ request: function (o) { (out.sent = out.sent || []).push(o); return Promise.resolve("
                     + json.dumps(reply) + "); } }")
    ctx.eval("""
        var http = module.exports;
        (async function () {
          var g = await http.get('http://x.test/g');
          out.get = [g.StatusCode, g.Status, g.ResponseText, g.status, g.json().id];
          var r = await http.request({ method: 'PUT', url: 'http://x.test/r', headers: { a: '1' }, body: 'b', timeout: 500 });
          out.request = [r.status, r.statusText, r.ok, r.headers['content-type'], r.headers.get('Content-Type'),
                         r.body, r.json().id, Object.keys(r.headers)];
          var p = await http.post('http://x.test/p', { k: 1 }, { headers: { z: '2' } });
          out.post = p.status;
          var f = await http.fetch('http://x.test/f', { method: 'DELETE', headers: { q: '3' } });
          out.fetch = [f.ok, f.status, f.statusText, f.headers['content-type'], f.headers.has('CONTENT-TYPE'),
                       await f.text(), (await f.json()).id];
        })().catch(function (e) { out.error = String(e); });
    """)
    out = drain(ctx)
    assert "error" not in out, out
    assert out["get"] == [201, "201 Created", '{"id": 7}', 201, 7]
    assert out["request"] == [201, "Created", True, "application/json", "application/json", '{"id": 7}', 7, ["content-type"]]
    assert out["post"] == 201
    assert out["fetch"] == [True, 201, "Created", "application/json", True, '{"id": 7}', 7]
    assert out["sent"] == [
        {"url": "http://x.test/g", "method": "GET"},
        {"method": "PUT", "url": "http://x.test/r", "headers": {"a": "1"}, "body": "b", "timeout": 500},
        {"headers": {"z": "2"}, "url": "http://x.test/p", "method": "POST", "body": {"k": 1}},
        {"url": "http://x.test/f", "method": "DELETE", "headers": {"q": "3"}},
    ]


def test_fetch_rejects_on_network_error_and_json_rejects_on_bad_json() -> None:
    ctx = js_context("{ request: function (o) { return o.url.indexOf('down') >= 0 ? Promise.reject(new Error('http: down'))"
                     " : Promise.resolve({status: 500, statusText: 'Internal Server Error', headers: {}, body: 'oops', url: o.url}); } }")
    ctx.eval("""
        var http = module.exports;
        http.fetch('http://down.test/').then(function () { out.down = 'resolved'; }, function (e) { out.down = e.message; });
        http.fetch('http://x.test/').then(function (r) { out.ok = r.ok; out.status = r.status; return r.json(); })
            .then(function () { out.json = 'parsed'; }, function (e) { out.json = e.name; });
        http.get('http://down.test/').then(null, function (e) { out.getPromise = e.message; });
    """)
    assert drain(ctx) == {"down": "http: down", "ok": False, "status": 500, "json": "SyntaxError", "getPromise": "http: down"}


def test_callback_form_without_error_callback_surfaces_the_error() -> None:
    """No onErr: the failure must not vanish. The promise chain that get() leaves behind
    rejects with the error, so the runner sees an unhandled rejection (a failed run)."""
    ctx = js_context("{ request: function () { return Promise.reject(new Error('http: boom')); } }")
    ctx.eval("""
        var made = [], then = Promise.prototype.then;
        Promise.prototype.then = function (a, b) { var p = then.call(this, a, b); made.push(p); return p; };
        out.r = String(module.exports.get('http://x.test/', function () { out.ok = true; }));
        Promise.prototype.then = then;
    """)
    drain(ctx)
    ctx.eval("then.call(made[made.length - 1], null, function (e) { out.last = e.message; });")
    assert drain(ctx) == {"r": "undefined", "last": "http: boom"}
