"""Persistent state behind one interface (:class:`~traitor.store.abc.JobStore`).

:func:`open_store` picks the backend from a URL:

* ``sqlite://`` (or ``sqlite:///``) — the embedded default: ``<data_dir>/traitor.db``
  for the namespace ``default``, ``<data_dir>/traitor-<namespace>.db`` otherwise;
* ``sqlite:///abs/path/file.db`` — that file, whatever the namespace (a path ending in
  ``/`` or naming an existing folder is used as the folder of the per-namespace files);
  a relative path (``sqlite://jobs.db``) is taken inside ``data_dir``;
  ``?synchronous=normal|full`` overrides the ``synchronous`` argument;
* ``postgresql://…`` / ``postgres://…`` — the schema ``traitor_<namespace>``;
* ``mongodb://…`` / ``mongodb+srv://…`` — the database ``traitor_<namespace>``.

Backends are imported lazily, so using SQLite never imports asyncpg or pymongo.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs

from traitor.store.abc import JobQuery, JobStore, RunQuery
from traitor.store.codec import namespace_token

__all__ = ["JobQuery", "JobStore", "RunQuery", "open_store", "sqlite_path", "DEFAULT_DATA_DIR"]

DEFAULT_DATA_DIR = Path("~/.traitor")

_SCHEMES = "sqlite://, postgresql:// (or postgres://), mongodb:// (or mongodb+srv://)"


def sqlite_path(url: str, *, namespace: str = "default", data_dir: Path | None = None) -> tuple[Path, dict[str, str]]:
    """The database file a ``sqlite:`` URL names, and the URL's query options."""
    rest = url.split(":", 1)[1]
    rest, _, query = rest.partition("?")
    options = {k.lower(): v[-1] for k, v in parse_qs(query).items()}
    if rest.startswith("//"):
        rest = rest[2:]
    base = (data_dir or DEFAULT_DATA_DIR).expanduser()
    filename = "traitor.db" if namespace == "default" else f"traitor-{namespace_token(namespace)}.db"
    if rest in ("", "/"):
        return base / filename, options
    path = Path(rest).expanduser()
    if not path.is_absolute():
        path = base / path
    if rest.endswith("/") or path.is_dir():
        return path / filename, options
    return path, options


def open_store(
    url: str,
    *,
    namespace: str = "default",
    data_dir: Path | None = None,
    synchronous: str = "normal",
) -> JobStore:
    """A (not yet started) store for ``url``; ``await store.start()`` opens it.

    ``namespace`` is the cluster name: its own SQLite file, PostgreSQL schema or
    MongoDB database. ``synchronous`` (``normal`` or ``full``) applies to SQLite only.
    Raise ``ValueError`` for a URL whose scheme is not one of the three backends.
    """
    if not isinstance(url, str) or ":" not in url:
        raise ValueError(f"store URL {url!r} has no scheme: use one of {_SCHEMES}")
    scheme = url.split(":", 1)[0].strip().lower()
    if scheme == "sqlite":
        from traitor.store.sqlite import SqliteStore

        path, options = sqlite_path(url, namespace=namespace, data_dir=data_dir)
        return SqliteStore(path, synchronous=options.get("synchronous", synchronous))
    if scheme in ("postgresql", "postgres"):
        from traitor.store.postgresql import PostgresStore

        return PostgresStore(url, namespace=namespace)
    if scheme in ("mongodb", "mongodb+srv"):
        from traitor.store.mongodb import MongoStore

        return MongoStore(url, namespace=namespace)
    # Only the scheme goes into the message: the rest may hold a password.
    raise ValueError(f"unsupported store URL scheme {scheme + ':'!r}: use one of {_SCHEMES}")
