"""The built-in ``http`` module: outbound HTTP for scripts, behind the address policy.

In a script::

    const http = require('http');

    // the original Traitor's callback form
    http.get('https://example.com/', function (res) {
        console.log(res.StatusCode, res.Status, res.ResponseText.length);   // 200 "200 OK" …
    }, function (err) { console.error(err.message); });

    // promises
    const res = await http.request({method: 'PUT', url, headers: {'x-a': '1'}, body: {any: 'json'}});
    res.status; res.statusText; res.headers['content-type']; res.body; res.json();
    await http.post(url, 'text or a JSON value', {headers: {...}});
    const r = await http.get(url);                  // no callback → a Promise of the callback's object

    // fetch-like (the prelude also offers it as a global ``fetch``)
    const f = await http.fetch(url, {method: 'POST', headers: {...}, body: '...'});
    f.ok; f.status; f.statusText; f.headers['x-y']; f.headers.get('X-Y'); await f.text(); await f.json();

Options of ``request`` / ``fetch``: ``method`` (default GET), ``url``, ``headers`` (an
object of strings), ``body`` (a string is sent as is; any other JSON value is sent as
JSON with ``content-type: application/json`` unless a content type is given) and
``timeout`` in **milliseconds** (capped by the operator's ``HttpSettings.timeout``,
which is in seconds and is also the default). Response bodies are text (decoded with
the response's charset, else UTF-8; bytes that do not decode become U+FFFD).

Rules, all enforced here in the service process:

* Every URL — the first and every redirect hop — is checked by
  :class:`~traitor.runtime.modules.netpolicy.AddressPolicy` before a connection is
  made, and the connection goes to the checked address (see ``netpolicy``).
* Redirects (301, 302, 303, 307, 308) are followed by hand, at most
  ``max_redirects``; 303 (and 301/302 after a POST) become a GET without body;
  ``Authorization`` is dropped when the origin changes.
* A body larger than ``max_response_bytes`` (after decompression) is an error, as
  is a request body larger than ``max_request_bytes``.
* Each call has one deadline for everything (connect, redirects, the whole body).
* At most ``max_concurrent_per_run`` requests of one run are in flight; further
  calls of that run wait for a slot (the wait does not count against the timeout).
* No cookies are kept between requests (the client is shared by every run), no
  proxy or ``.netrc`` from the environment is used.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import http.cookiejar
import json
import math
import re
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, AsyncIterator

import httpx

from traitor import __version__
from traitor.runtime.modules import CallContext, HostModule
from traitor.runtime.modules.netpolicy import (
    AddressPolicy,
    PinnedTransport,
    PolicyError,
    parse_url,
    pinned,
    url_host,
    url_port,
)

MiB = 1024 * 1024

_METHOD = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_HEADER_NAME = _METHOD
_BAD_HEADER_VALUE = re.compile(r"[\r\n\x00]")


class HttpError(Exception):
    """A failed ``http`` call; ``str()`` is the message the script's Error carries."""


@dataclass(eq=False)
class HttpSettings:
    """The operator's settings of the ``http`` module, and the client they share.

    One ``httpx.AsyncClient`` is created lazily (on the first request, in the running
    event loop) for every module built from these settings; :meth:`close` releases
    it at shutdown. The limits are read on every call; ``policy`` is also baked into
    the client's transport when it is created, so replace it only before the first
    request (or call :meth:`close` after replacing it).
    """

    #: Which addresses may be reached (``--http-allow``).
    policy: AddressPolicy = field(default_factory=AddressPolicy)
    #: Seconds one call may take in all (connect, redirects, body); also the ceiling
    #: of a script's own ``timeout`` option.
    timeout: float = 30.0
    #: Largest response body (decoded) in bytes.
    max_response_bytes: int = 10 * MiB
    #: Largest request body in bytes.
    max_request_bytes: int = 10 * MiB
    #: Requests of one run in flight at once; further calls wait.
    max_concurrent_per_run: int = 4
    #: Redirects followed per call.
    max_redirects: int = 5
    #: ``User-Agent`` sent unless the script sets one.
    user_agent: str = f"traitor/{__version__}"
    #: Connections of the shared client, over all runs.
    max_connections: int = 100

    _client: httpx.AsyncClient | None = field(default=None, init=False, repr=False)
    _client_loop: asyncio.AbstractEventLoop | None = field(default=None, init=False, repr=False)
    _slots: dict[str, _RunSlot] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if not (self.timeout > 0 and math.isfinite(self.timeout)):
            raise ValueError("HttpSettings.timeout must be a positive number of seconds")
        for name in ("max_response_bytes", "max_request_bytes", "max_concurrent_per_run", "max_connections"):
            if getattr(self, name) < 1:
                raise ValueError(f"HttpSettings.{name} must be at least 1")
        if self.max_redirects < 0:
            raise ValueError("HttpSettings.max_redirects must not be negative")

    # ------------------------------------------------------------ lifecycle
    def client(self) -> httpx.AsyncClient:
        """The shared client of the running event loop (created on first use)."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._client.is_closed or self._client_loop is not loop:
            # A client left from another (finished) event loop cannot be used or closed here.
            self._client = httpx.AsyncClient(
                transport=PinnedTransport(
                    self.policy,
                    limits=httpx.Limits(
                        max_connections=self.max_connections,
                        max_keepalive_connections=min(20, self.max_connections),
                    ),
                ),
                headers={"User-Agent": self.user_agent},
                cookies=http.cookiejar.CookieJar(http.cookiejar.DefaultCookiePolicy(allowed_domains=[])),
                follow_redirects=False,
                trust_env=False,
                timeout=self.timeout,
            )
            self._client_loop = loop
        return self._client

    async def close(self) -> None:
        """Close the shared client (idempotent; a later request opens a new one)."""
        client, self._client, self._client_loop = self._client, None, None
        if client is not None and not client.is_closed:
            await client.aclose()

    # ------------------------------------------------------------ per-run limit
    @contextlib.asynccontextmanager
    async def run_slot(self, run_id: str) -> AsyncIterator[None]:
        """Hold one of the run's ``max_concurrent_per_run`` slots; the run's entry goes
        away when it has no request in flight or waiting."""
        slot = self._slots.get(run_id)
        if slot is None:
            slot = self._slots[run_id] = _RunSlot(asyncio.Semaphore(self.max_concurrent_per_run))
        slot.users += 1
        try:
            async with slot.semaphore:
                yield
        finally:
            slot.users -= 1
            if slot.users == 0 and self._slots.get(run_id) is slot:
                del self._slots[run_id]


@dataclass(eq=False, slots=True)
class _RunSlot:
    semaphore: asyncio.Semaphore
    users: int = 0


@dataclass(slots=True)
class _Call:
    method: str
    url: httpx.URL
    headers: dict[str, str]
    content: bytes | None
    timeout: float


def _parse_call(settings: HttpSettings, opts: Any) -> _Call:
    if isinstance(opts, str):
        opts = {"url": opts}
    if not isinstance(opts, dict):
        raise HttpError("http: request options must be an object with a 'url'")
    url = parse_url(opts.get("url"))  # type: ignore[arg-type]

    method = opts.get("method") or "GET"
    if not isinstance(method, str) or not _METHOD.match(method):
        raise HttpError(f"http: invalid method {method!r}")
    method = method.upper()

    headers: dict[str, str] = {}
    raw_headers = opts.get("headers")
    if raw_headers is not None:
        if not isinstance(raw_headers, dict):
            raise HttpError("http: headers must be an object of name: value")
        for name, value in raw_headers.items():
            if not isinstance(name, str) or not _HEADER_NAME.match(name):
                raise HttpError(f"http: invalid header name {name!r}")
            if value is None:
                continue
            if isinstance(value, bool):
                value = "true" if value else "false"
            elif isinstance(value, (int, float)):
                value = json.dumps(value)
            elif not isinstance(value, str):
                raise HttpError(f"http: the value of header {name!r} must be a string")
            if _BAD_HEADER_VALUE.search(value):
                raise HttpError(f"http: the value of header {name!r} contains a line break or NUL")
            headers[name] = value

    body = opts.get("body")
    content: bytes | None
    if body is None:
        content = None
    elif isinstance(body, str):
        content = body.encode("utf-8")
    else:
        content = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        if not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "application/json"
    if content is not None and len(content) > settings.max_request_bytes:
        raise HttpError(f"http: request body of {len(content)} bytes exceeds the limit of {settings.max_request_bytes} bytes")

    timeout = settings.timeout
    raw_timeout = opts.get("timeout")
    if raw_timeout is not None:
        if isinstance(raw_timeout, bool) or not isinstance(raw_timeout, (int, float)) or not raw_timeout > 0:
            raise HttpError("http: timeout must be a positive number of milliseconds")
        timeout = min(timeout, raw_timeout / 1000)
    return _Call(method, url, headers, content, timeout)


def _status_text(response: httpx.Response) -> str:
    if response.reason_phrase:
        return response.reason_phrase
    try:
        return HTTPStatus(response.status_code).phrase
    except ValueError:
        return ""


def _decode(body: bytes, response: httpx.Response) -> str:
    charset = response.charset_encoding or "utf-8"
    try:
        codecs.lookup(charset)
    except LookupError:
        charset = "utf-8"
    return body.decode(charset, errors="replace")


def _headers(response: httpx.Response) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in response.headers.multi_items():
        key = name.lower()
        out[key] = f"{out[key]}, {value}" if key in out else value
    return out


async def _read_body(response: httpx.Response, limit: int, what: str) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit and "content-encoding" not in response.headers:
        raise HttpError(f"http: response body of {what} ({declared} bytes) exceeds the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            raise HttpError(f"http: response body of {what} exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _perform(settings: HttpSettings, call: _Call) -> dict[str, Any]:
    client = settings.client()
    request = client.build_request(call.method, call.url, headers=call.headers, content=call.content)
    redirects = 0
    while True:
        url = request.url
        what = f"{request.method} {url}"
        addresses = await settings.policy.check_url(url)
        try:
            with pinned(url_host(url), url_port(url), addresses):
                response = await client.send(request, stream=True, follow_redirects=False)
        except httpx.ConnectError as exc:
            raise HttpError(f"http: cannot connect to {url.host}:{url_port(url)} for {what}: {exc or 'connection failed'}") from None
        try:
            if response.next_request is not None:
                if redirects >= settings.max_redirects:
                    raise HttpError(
                        f"http: too many redirects (more than {settings.max_redirects}) for "
                        f"{call.method} {call.url}; the last pointed to {response.headers.get('location')}"
                    )
                redirects += 1
                request = response.next_request
                continue
            body = await _read_body(response, settings.max_response_bytes, what)
            return {
                "status": response.status_code,
                "statusText": _status_text(response),
                "headers": _headers(response),
                "body": _decode(body, response),
                "url": str(url),
            }
        finally:
            await response.aclose()


async def http_request(settings: HttpSettings, ctx: CallContext, opts: Any = None) -> dict[str, Any]:
    """``request(opts)`` of the ``http`` module → ``{status, statusText, headers, body, url}``."""
    call = _parse_call(settings, opts)
    async with settings.run_slot(ctx.run_id):
        try:
            async with asyncio.timeout(call.timeout):
                return await _perform(settings, call)
        except (TimeoutError, httpx.TimeoutException):
            raise HttpError(f"http: {call.method} {call.url} timed out after {call.timeout:g} s") from None
        except (HttpError, PolicyError):
            raise
        except httpx.InvalidURL as exc:
            raise HttpError(f"http: invalid URL in {call.method} {call.url}: {exc}") from None
        except (httpx.HTTPError, httpx.StreamError) as exc:
            detail = str(exc) or type(exc).__name__
            raise HttpError(f"http: {call.method} {call.url} failed: {detail}") from None


def http_module(settings: HttpSettings) -> HostModule:
    """The ``http`` host module, sharing ``settings``' client (close it with ``settings.close()``)."""

    async def request(ctx: CallContext, opts: Any = None) -> dict[str, Any]:
        return await http_request(settings, ctx, opts)

    return HostModule(name="http", functions={"request": request}, source=HTTP_JS, origin="builtin")


#: The JS side of the module. It sees ``__host.request`` (returns a Promise of
#: ``{status, statusText, headers, body, url}``) and ``module``.
HTTP_JS = r"""
(function () {
  'use strict';
  var host = __host;

  function headerObject(h) {
    var out = {};
    if (h) { Object.keys(h).forEach(function (k) { out[k] = h[k]; }); }
    // fetch-style accessors, not enumerable: JSON.stringify and Object.keys see the plain object.
    Object.defineProperty(out, 'get', { value: function (name) {
      var v = out[String(name).toLowerCase()]; return v === undefined ? null : v; } });
    Object.defineProperty(out, 'has', { value: function (name) {
      return Object.prototype.hasOwnProperty.call(out, String(name).toLowerCase()); } });
    return out;
  }

  function call(opts) {
    try {
      return host.request(opts);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  function options(urlOrOpts, opts) {
    if (typeof urlOrOpts === 'string') {
      return Object.assign({}, opts || {}, { url: urlOrOpts });
    }
    if (urlOrOpts && typeof urlOrOpts === 'object') {
      return Object.assign({}, urlOrOpts);
    }
    return { url: urlOrOpts };
  }

  function result(r) {
    return {
      status: r.status,
      statusText: r.statusText,
      ok: r.status >= 200 && r.status < 300,
      headers: headerObject(r.headers),
      body: r.body,
      url: r.url,
      json: function () { return JSON.parse(r.body); }
    };
  }

  // The original Traitor's response object: {Status: "200 OK", StatusCode: 200, ResponseText: "..."}.
  // The fields of request() are there too, not enumerable.
  function legacy(r) {
    var out = { Status: r.status + (r.statusText ? ' ' + r.statusText : ''), StatusCode: r.status, ResponseText: r.body };
    var more = result(r);
    Object.keys(more).forEach(function (k) {
      Object.defineProperty(out, k, { value: more[k], writable: true, configurable: true });
    });
    return out;
  }

  function request(urlOrOpts, opts) {
    return call(options(urlOrOpts, opts)).then(result);
  }

  // get(url, onOk, onErr): Node-era callback form, returns undefined; onOk gets the
  // original's object, onErr the Error (without onErr an error is an unhandled rejection,
  // so the run fails with it). get(url) / get(url, opts): a Promise of the same object.
  function get(url, a, b) {
    var opts = (a && typeof a === 'object') ? a : {};
    var p = call(Object.assign({}, opts, { url: url, method: 'GET' })).then(legacy);
    var onOk = typeof a === 'function' ? a : null;
    var onErr = typeof b === 'function' ? b : null;
    if (!onOk && !onErr) { return p; }
    p.then(function (res) { if (onOk) { onOk(res); } },
           function (err) { if (onErr) { onErr(err); } else { throw err; } });
    return undefined;
  }

  function post(url, body, opts) {
    return request(Object.assign({}, opts || {}, { url: url, method: 'POST', body: body }));
  }

  function fetch(input, init) {
    init = init || {};
    var url = (input && typeof input === 'object' && 'url' in input) ? input.url : String(input);
    var opts = { url: url, method: init.method || 'GET', headers: init.headers, body: init.body };
    if (init.timeout !== undefined) { opts.timeout = init.timeout; }
    return call(opts).then(function (r) {
      return {
        ok: r.status >= 200 && r.status < 300,
        status: r.status,
        statusText: r.statusText,
        url: r.url,
        headers: headerObject(r.headers),
        text: function () { return Promise.resolve(r.body); },
        json: function () {
          try { return Promise.resolve(JSON.parse(r.body)); } catch (e) { return Promise.reject(e); }
        }
      };
    });
  }

  module.exports = { get: get, request: request, post: post, fetch: fetch };
})();
"""
