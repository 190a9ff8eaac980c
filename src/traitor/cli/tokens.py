"""API tokens: the ``--token`` flag and tokens managed with ``traitor token``.

Managed tokens are kept hashed (SHA-256) in ``<data-dir>/tokens.json``; the
plain token is shown once, when it is created.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import time
from pathlib import Path
from typing import Any


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenFile:
    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "tokens.json"

    def load(self) -> list[dict[str, Any]]:
        try:
            return json.loads(self.path.read_text())
        except FileNotFoundError:
            return []

    def save(self, tokens: list[dict[str, Any]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(tokens, indent=2))
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.path)

    def create(self, name: str) -> tuple[str, dict[str, Any]]:
        token = "trt_" + secrets.token_urlsafe(32)
        entry = {"id": secrets.token_hex(4), "name": name, "sha256": _digest(token), "created": int(time.time()),
                 "revoked": False}
        self.save([*self.load(), entry])
        return token, entry

    def revoke(self, token_id: str) -> bool:
        tokens = self.load()
        hit = False
        for entry in tokens:
            if entry["id"] == token_id or entry["name"] == token_id:
                entry["revoked"] = True
                hit = True
        self.save(tokens)
        return hit


class TokenChecker:
    """Accepts the ``--token`` value and every unrevoked managed token."""

    def __init__(self, flag_token: str | None, data_dir: Path) -> None:
        self.flag_digest = _digest(flag_token) if flag_token else None
        self.file = TokenFile(data_dir)
        self._cache: tuple[float, set[str]] = (-1.0, set())

    def _managed(self) -> set[str]:
        try:
            mtime = self.file.path.stat().st_mtime
        except FileNotFoundError:
            return set()
        if mtime != self._cache[0]:
            self._cache = (mtime, {e["sha256"] for e in self.file.load() if not e.get("revoked")})
        return self._cache[1]

    async def check(self, token: str) -> bool:
        digest = _digest(token)
        if self.flag_digest and hmac.compare_digest(digest, self.flag_digest):
            return True
        return any(hmac.compare_digest(digest, known) for known in self._managed())
