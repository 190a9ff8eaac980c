"""The console ships inside the package and works offline (no browser needed)."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import httpx

import traitor.ui

STATIC = Path(traitor.ui.__file__).parent / "static"


def test_every_asset_is_in_the_package() -> None:
    for name in ("index.html", "app.js", "app.css", "favicon.svg"):
        assert (STATIC / name).is_file(), name
    html = (STATIC / "index.html").read_text()
    for ref in re.findall(r'(?:src|href)="([^"#]+)"', html):
        assert ref.startswith("/static/") or ref == "/docs", f"index.html loads {ref} from outside the package"
    css = (STATIC / "app.css").read_text()
    assert "url(" not in css and "@import" not in css


def test_the_bundle_is_one_self_contained_file() -> None:
    bundle = (STATIC / "app.js").read_text()
    # Every module is inside: no import of a package name or of a URL is left.
    assert not re.search(r"""(?:\bfrom|\bimport)\s*\(?\s*["'](?:@|https?:|//)""", bundle)
    for cdn in ("unpkg.com", "jsdelivr", "cdnjs", "esm.sh", "skypack"):
        assert cdn not in bundle
    assert len(bundle) < 1_200_000


def test_served_at_root_with_compression_and_revalidation(api: httpx.Client) -> None:
    root = api.get("/")
    assert root.status_code == 200 and root.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/static/app.js">' in root.text

    raw = api.get("/static/app.js", headers={"Accept-Encoding": "identity"})
    assert raw.status_code == 200 and "content-encoding" not in raw.headers
    assert raw.headers["cache-control"] == "no-cache"
    assert raw.headers["content-type"].startswith(("text/javascript", "application/javascript"))

    with api.stream("GET", "/static/app.js", headers={"Accept-Encoding": "gzip"}) as packed:
        body = b"".join(packed.iter_raw())
        assert packed.headers["content-encoding"] == "gzip"
        assert packed.headers["vary"] == "Accept-Encoding"
        etag = packed.headers["etag"]
    assert gzip.decompress(body) == raw.content
    assert len(body) < len(raw.content) / 2

    again = api.get("/static/app.js", headers={"Accept-Encoding": "gzip", "If-None-Match": etag})
    assert again.status_code == 304
    assert api.get("/static/nope.js").status_code == 404
