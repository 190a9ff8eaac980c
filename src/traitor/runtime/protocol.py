"""Message framing between the worker pool and its worker processes.

A *frame* is a 4-byte little-endian length followed by a :mod:`marshal` dump of a
list of messages, so any number of ready messages travel in one write (the pool
batches the runs it hands a worker, the worker batches results). A message is a
tuple whose first item is its kind; every field is a plain ``int``/``float``/
``str``/``bool``/``None``/``list``/``tuple``/``dict``.

marshal (not pickle) on purpose: it is the fastest codec for these shapes and it
cannot run code while decoding. The worker is our own code; script-controlled text
only ever travels *inside* strings, never as frame bytes.

Pool → worker
    ``(INIT, modules, options)``  first frame; ``modules`` = {name: (function names,
                                  source or None)}, ``options`` = {"slice_ms", "max_nesting",
                                  "stack_bytes", "heartbeat_ms"}
    ``(RUN, seq, script, timeout_ms, cpu_ms, memory_bytes, output_bytes[, libraries, evicted])``
                                  with script libraries (``RunRequest.libraries``):
                                  ``libraries`` = [(specifier, name, version, code or None)],
                                  code None when the worker has that version compiled
                                  already (version 0: no such library); ``evicted`` =
                                  [(name, version)] the worker should drop (the pool
                                  mirrors each worker's set of compiled versions)
    ``(RESULT, seq, call_id, ok, payload)``  payload: JSON text of the value, or the
                                  error message when ``ok`` is False
    ``(CANCEL, seq)``
    End of input (stdin closed) tells the worker to exit.

Worker → pool
    ``(READY, pid, hooks_error)``  ``hooks_error`` is None when the native hooks work
    ``(LINES, seq, [[ms, level, text], ...])``
    ``(CALL, seq, call_id, module, function, args_json)``
    ``(DONE, seq, status, error, started_ms, finished_ms, [[ms, level, text], ...])``
    ``(LOAD, depth)``  how many runs are suspended under preemptions (CPU-bound runs
                       it is interleaving); the pool prefers workers with a low depth
                       and sends nothing to one at the maximum
"""

from __future__ import annotations

import marshal
import struct
from typing import Any

INIT = 1
RUN = 2
RESULT = 3
CANCEL = 4

READY = 11
LINES = 12
CALL = 13
DONE = 14
LOAD = 15

HEADER = struct.Struct("<I")
MAX_FRAME = 1 << 30


class ProtocolError(Exception):
    """The peer sent something that is not a valid frame."""


def encode(messages: list[Any]) -> bytes:
    """One frame holding ``messages``."""
    body = marshal.dumps(messages)
    if len(body) > MAX_FRAME:
        raise ProtocolError(f"frame of {len(body)} bytes is too large")
    return HEADER.pack(len(body)) + body


class Decoder:
    """Incremental frame decoder: feed it bytes as they arrive, get messages back."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Any]:
        buf = self._buf
        buf += data
        size = len(buf)
        pos = 0
        out: list[Any] = []
        view = memoryview(buf)
        try:
            while size - pos >= 4:
                (n,) = HEADER.unpack_from(buf, pos)
                if n > MAX_FRAME:
                    raise ProtocolError(f"frame header announces {n} bytes")
                end = pos + 4 + n
                if end > size:
                    break
                try:
                    batch = marshal.loads(view[pos + 4 : end])
                except (ValueError, EOFError, TypeError) as exc:
                    raise ProtocolError(f"undecodable frame: {exc}") from None
                if type(batch) is not list:
                    raise ProtocolError("a frame must hold a list of messages")
                out.extend(batch)
                pos = end
        finally:
            view.release()
        if pos:
            del buf[:pos]
        return out

    @property
    def pending(self) -> int:
        """Bytes received that do not form a complete frame yet."""
        return len(self._buf)
