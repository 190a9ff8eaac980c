"""A minimal HTTP/1.1 keep-alive client on asyncio streams, for load generation.

httpx costs ~0.3 ms of client CPU per request; on a 2-core machine the client would
take the server's CPU. This one parses just what uvicorn sends (status line,
``content-length`` or chunked body) and costs a few tens of µs per request.
Loopback only.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any


class Connection:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> "Connection":
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        return self

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    async def request(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        if self.writer is None:
            await self.open()
        assert self.reader is not None and self.writer is not None
        if body is None:
            head = f"{method} {path} HTTP/1.1\r\nhost: {self.host}:{self.port}\r\n\r\n"
            self.writer.write(head.encode())
        else:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            head = (f"{method} {path} HTTP/1.1\r\nhost: {self.host}:{self.port}\r\n"
                    f"content-type: application/json\r\ncontent-length: {len(data)}\r\n\r\n")
            self.writer.write(head.encode() + data)
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length = None
        chunked = False
        close = False
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
            elif name == "connection" and value.strip().lower() == "close":
                close = True
        if chunked:
            parts = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).strip(), 16)
                if size == 0:
                    await self.reader.readuntil(b"\r\n")
                    break
                parts.append(await self.reader.readexactly(size + 2))
            payload = b"".join(p[:-2] for p in parts)
        else:
            payload = await self.reader.readexactly(length or 0)
        if close:
            self.close()
        return status, payload
