"""Command-line flags; each also read from a ``TRAITOR_*`` environment variable.

A flag on the command line wins over its variable, which wins over the default.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, Sequence
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from traitor import __version__
from traitor.domain.limits import Limits
from traitor.runtime.cores import usable_cores


class Parser(argparse.ArgumentParser):
    """Bad flags exit 2 with one clear line (no usage dump)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"traitor: error: {message} (see traitor --help)\n")


def local_timezone() -> str:
    tz = os.environ.get("TZ", "").lstrip(":")
    if tz:
        return tz
    try:
        target = os.path.realpath("/etc/localtime")
        if "zoneinfo/" in target:
            return target.split("zoneinfo/", 1)[1]
    except OSError:
        pass
    return "UTC"


@dataclass(frozen=True)
class Flag:
    names: tuple[str, ...]
    dest: str
    help: str
    default: Any = None
    type: Any = str
    choices: Sequence[str] | None = None
    boolean: bool = False

    @property
    def env(self) -> str:
        return "TRAITOR_" + self.dest.upper()


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise ValueError
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise ValueError
    return value


_positive_int.__name__ = "positive whole number"
_positive_float.__name__ = "positive number"
_port.__name__ = "port (0-65535)"

L = Limits()
FLAGS: list[Flag] = [
    Flag(("-m", "--mode"), "mode", "std: one process on the embedded store; multi: a cluster node", "std",
         choices=("std", "multi")),
    Flag(("-r", "--redis"), "redis", "Redis URL, required with -m multi (redis://host:6379/0)"),
    Flag(("-mg", "--mongo"), "mongo", "MongoDB URL for the cluster's store (mongodb://host:27017)"),
    Flag(("-c", "--cluster"), "cluster", "cluster name: namespaces Redis keys and the database", "default"),
    Flag(("-ip", "--ip"), "ip", "address to bind; without --token only 127.0.0.1 is allowed", "127.0.0.1"),
    Flag(("-p", "--port"), "port", "port to bind", 8080, _port),
    Flag(("--data-dir",), "data_dir", "data directory (embedded store, plugins, logs)", "~/.traitor"),
    Flag(("--store",), "store", "store URL: sqlite:///file.db, postgresql://..., mongodb://... "
         "(default: SQLite in --data-dir, or -mg)"),
    Flag(("--token",), "token", "API token clients must send as 'Authorization: Bearer <token>'"),
    Flag(("--insecure",), "insecure", "allow binding a public address without any token", False, boolean=True),
    Flag(("--timezone",), "timezone", "IANA zone of jobs that name none", local_timezone()),
    Flag(("--workers",), "workers", "script worker processes (default: one per usable core)", usable_cores(),
         _positive_int),
    Flag(("--node-id",), "node_id", "this node's name in the cluster (default: host name + port)"),
    Flag(("--log-level",), "log_level", "debug, info, warning or error", "info",
         choices=("debug", "info", "warning", "error")),
    Flag(("--log-format",), "log_format", "text or json", "text", choices=("text", "json")),
    Flag(("--http-allow",), "http_allow", "comma-separated CIDRs or host names scripts may reach "
         "despite the private-address rule (e.g. 127.0.0.1/32,10.0.0.0/8)", ""),
    Flag(("--sync",), "sync", "SQLite durability: normal survives a process crash, full also power loss",
         "normal", choices=("normal", "full")),
    Flag(("--default-timeout",), "default_timeout", "seconds a run may take when its job sets no timeout",
         L.default_timeout, _positive_float),
    Flag(("--max-timeout",), "max_timeout", "largest timeout a job may set, seconds", L.max_timeout,
         _positive_float),
    Flag(("--cpu-time",), "cpu_time", "CPU seconds a run may use", L.cpu_time, _positive_float),
    Flag(("--memory-limit",), "memory_limit", "MiB of JS heap per run when its job sets none",
         L.default_memory_mib, _positive_int),
    Flag(("--max-memory",), "max_memory", "largest memoryLimit a job may set, MiB", L.max_memory_mib,
         _positive_int),
    Flag(("--output-limit",), "output_limit", "bytes of console output kept per run", L.output_bytes,
         _positive_int),
    Flag(("--max-retries",), "max_retries", "largest retries a job may set", L.max_retries, _positive_int),
    Flag(("--misfire-grace",), "misfire_grace", "seconds late a fire may be and still count as on time",
         L.misfire_grace, _positive_float),
    Flag(("--runs-kept",), "runs_kept", "runs kept per job", L.runs_kept_per_job, _positive_int),
    Flag(("--runs-max-age",), "runs_max_age", "days a run is kept", L.runs_kept_days, _positive_float),
    Flag(("--max-body",), "max_body", "largest request body, bytes", 1024 * 1024, _positive_int),
    Flag(("--grace",), "grace", "seconds running scripts get to finish on shutdown", 10.0, _positive_float),
    Flag(("--webhook",), "webhook", "URL that receives a JSON POST for every failed run (retried with backoff)"),
    Flag(("--allow-origin",), "allow_origin", "comma-separated extra origins allowed for WebSockets/CORS", ""),
]


def _default_note(flag: Flag) -> str:
    """``" (default: X)"`` for a flag with a real default. The parser's own defaults are
    None, so that a flag left out can fall back to its variable: argparse cannot show them."""
    if flag.boolean or flag.default in (None, "") or "(default:" in flag.help:
        return ""
    return f" (default: {flag.default})"


def build_parser() -> Parser:
    parser = Parser(
        prog="traitor",
        description="Traitor: a distributed timing-task service whose jobs are JavaScript programs. "
        "Every flag can also be set with the environment variable shown in brackets.",
    )
    parser.add_argument("--version", action="version", version=f"traitor {__version__}")
    for flag in FLAGS:
        help_text = f"{flag.help}{_default_note(flag)} [{flag.env}]"
        if flag.boolean:
            parser.add_argument(*flag.names, dest=flag.dest, action="store_true", default=None, help=help_text)
        else:
            parser.add_argument(*flag.names, dest=flag.dest, type=flag.type, choices=flag.choices,
                                default=None, help=help_text, metavar=flag.dest.upper().replace("_", "-"))
    return parser


@dataclass
class Settings:
    values: dict[str, Any]

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def data_path(self) -> Path:
        return Path(os.path.expanduser(self.values["data_dir"]))

    def limits(self) -> Limits:
        return Limits(
            default_timeout=self.default_timeout,
            max_timeout=self.max_timeout,
            cpu_time=self.cpu_time,
            default_memory_mib=self.memory_limit,
            max_memory_mib=self.max_memory,
            output_bytes=self.output_limit,
            max_retries=self.max_retries,
            misfire_grace=self.misfire_grace,
            runs_kept_per_job=self.runs_kept,
            runs_kept_days=self.runs_max_age,
        )

    def store_url(self) -> str:
        if self.store:
            return self.store
        if self.mongo:
            return self.mongo
        return f"sqlite:///{self.data_path / 'traitor.db'}"


def parse_settings(argv: Sequence[str] | None = None, environ: dict[str, str] | None = None) -> Settings:
    parser = build_parser()
    args = parser.parse_args(argv)
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for flag in FLAGS:
        value = getattr(args, flag.dest)
        if value is None and flag.env in env:
            value = _from_env(parser, flag, env[flag.env])
        values[flag.dest] = flag.default if value is None else value
    settings = Settings(values)
    _check(parser, settings)
    return settings


def _from_env(parser: Parser, flag: Flag, raw: str) -> Any:
    if flag.boolean:
        return raw.strip().lower() in ("1", "true", "yes", "on")
    if flag.choices and raw not in flag.choices:
        parser.error(f"{flag.env}={raw!r}: choose from {', '.join(flag.choices)}")
    try:
        return flag.type(raw)
    except ValueError:
        parser.error(f"{flag.env}={raw!r} is not a valid {flag.type.__name__}")


def _check(parser: Parser, s: Settings) -> None:
    try:
        ZoneInfo(s.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        parser.error(f"--timezone {s.timezone!r} is not an IANA time zone (e.g. Europe/Paris)")
    if s.mode == "multi":
        if not s.redis:
            parser.error("-m multi needs a Redis URL (-r redis://host:6379)")
        if not (s.mongo or s.store):
            parser.error("-m multi needs a shared store: -mg mongodb://... or --store postgresql://...")
        if (s.store or "").startswith("sqlite"):
            parser.error("-m multi needs a shared store; SQLite is local to one process")
    if not s.token and not s.insecure and s.ip not in ("127.0.0.1", "localhost", "::1"):
        parser.error(f"refusing to bind {s.ip} without a token: give --token (or --insecure to accept the risk)")
    if not all(c.isalnum() or c in "-_" for c in s.cluster) or not s.cluster:
        parser.error("--cluster takes letters, digits, '-' and '_'")


def fail(message: str) -> NoReturn:
    sys.stderr.write(f"traitor: error: {message}\n")
    raise SystemExit(1)
