"""Script libraries: named JavaScript modules that jobs load with ``require('lib/NAME')``.

A library is a name and an append-only list of versions (1, 2, 3…): every update
stores a new version and old versions stay readable. Version numbers are never
reused, not even after the library is deleted and created again, so ``(name,
version)`` identifies one source text forever (caches rely on it).

Jobs refer to a library with a *specifier*: ``lib/NAME`` follows the latest
version, ``lib/NAME@3`` pins version 3. This module holds the rules (no I/O).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from traitor.domain.errors import ValidationError

#: What a library name looks like (also the last part of its specifier).
NAME_PATTERN = r"[a-z][a-z0-9_-]{0,63}"
NAME_RE = re.compile(rf"^{NAME_PATTERN}$")
#: ``lib/NAME`` or ``lib/NAME@VERSION``.
SPECIFIER_RE = re.compile(rf"^lib/({NAME_PATTERN})(?:@([1-9][0-9]{{0,8}}))?$")
PREFIX = "lib/"


@dataclass(frozen=True, slots=True)
class LibraryVersion:
    """One stored version of a library."""

    name: str
    version: int
    source: str
    created_at: int  # ms

    @property
    def size(self) -> int:
        """Bytes of the source, UTF-8."""
        return len(self.source.encode("utf-8", "surrogatepass"))


@dataclass(frozen=True, slots=True)
class LibraryInfo:
    """A library in a listing: its latest version and when it changed."""

    name: str
    version: int  # the latest
    created_at: int  # ms: when the library (its first version) was created
    updated_at: int  # ms: when the latest version was stored
    size: int  # bytes of the latest source


@dataclass(frozen=True, slots=True)
class VersionInfo:
    """A version in the version list of a library (without its source)."""

    version: int
    created_at: int
    size: int


def validate_name(name: object) -> str:
    if not isinstance(name, str) or not name:
        raise ValidationError("name", "a library needs a name")
    if not NAME_RE.match(name):
        raise ValidationError(
            "name",
            f"{name[:80]!r} is not a library name: 1 to 64 characters, lower-case letters, digits, '_' "
            "and '-', starting with a letter",
        )
    return name


def validate_source(source: object, max_bytes: int) -> str:
    if not isinstance(source, str):
        raise ValidationError("source", "must be a string")
    if not source.strip():
        raise ValidationError("source", "must not be empty")
    if len(source.encode("utf-8", "surrogatepass")) > max_bytes:
        raise ValidationError("source", f"is longer than {max_bytes} bytes")
    return source


@lru_cache(maxsize=4096)
def parse_specifier(spec: str) -> tuple[str, int | None] | None:
    """``"lib/x@3"`` → ``("x", 3)``, ``"lib/x"`` → ``("x", None)``; ``None`` if it is not one."""
    match = SPECIFIER_RE.match(spec)
    if match is None:
        return None
    name, version = match.groups()
    return name, int(version) if version else None


def is_library_specifier(spec: str) -> bool:
    """Whether a ``require``/``import`` argument names a library (well-formed or not)."""
    return spec.startswith(PREFIX)
