"""The command line: flags, environment variables, and clear one-line errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from traitor.cli.config import FLAGS, parse_settings


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run([sys.executable, "-m", "traitor", *args], capture_output=True, text=True, timeout=30,
                          env={**os.environ, **(env or {})})


def test_original_short_flags_and_long_forms() -> None:
    s = parse_settings(["-m", "multi", "-r", "redis://h:1", "-mg", "mongodb://m", "-c", "blue", "-ip", "127.0.0.1",
                        "-p", "9000"], environ={})
    assert (s.mode, s.redis, s.mongo, s.cluster, s.ip, s.port) == ("multi", "redis://h:1", "mongodb://m", "blue",
                                                                   "127.0.0.1", 9000)
    s = parse_settings(["--mode", "std", "--port", "81", "--workers", "3", "--timezone", "Europe/Paris"], environ={})
    assert (s.port, s.workers, s.timezone) == (81, 3, "Europe/Paris")


def test_every_flag_reads_its_environment_variable_and_the_flag_wins() -> None:
    s = parse_settings([], environ={"TRAITOR_PORT": "9100", "TRAITOR_WORKERS": "2", "TRAITOR_DATA_DIR": "/tmp/x"})
    assert (s.port, s.workers, s.data_dir) == (9100, 2, "/tmp/x")
    assert parse_settings(["-p", "9200"], environ={"TRAITOR_PORT": "9100"}).port == 9200
    assert all(flag.env.startswith("TRAITOR_") for flag in FLAGS)


def test_help_documents_every_flag() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for flag in FLAGS:
        assert flag.names[-1] in result.stdout and flag.env in result.stdout
    text = " ".join(result.stdout.split())  # argparse wraps the help lines
    assert "(default: None)" not in text  # the parser's placeholder, not a real default
    assert "port to bind (default: 8080) [TRAITOR_PORT]" in text
    assert "bytes of console output kept per run (default: 65536) [TRAITOR_OUTPUT_LIMIT]" in text


def test_version_is_the_installed_distributions() -> None:
    import importlib.metadata

    import traitor

    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"traitor {traitor.__version__}"
    assert traitor.__version__ == importlib.metadata.version("traitor")  # pyproject.toml and the package agree


@pytest.mark.parametrize(
    ("args", "env", "fragment"),
    [
        (["-m", "cluster"], {}, "invalid choice"),
        (["-p", "http"], {}, "port"),
        (["--workers", "0"], {}, "workers"),
        (["--timezone", "Mars/Base"], {}, "IANA"),
        (["-m", "multi"], {}, "Redis"),
        (["-m", "multi", "-r", "redis://x"], {}, "shared store"),
        (["-ip", "0.0.0.0"], {}, "without a token"),
        ([], {"TRAITOR_PORT": "eighty"}, "TRAITOR_PORT"),
    ],
)
def test_bad_flags_exit_non_zero_with_one_clear_line(args, env, fragment) -> None:
    result = run_cli(*args, env=env)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and fragment.lower() in lines[0].lower(), result.stderr


def test_public_bind_is_allowed_with_a_token_or_insecure() -> None:
    assert parse_settings(["-ip", "0.0.0.0", "--token", "s3cret"], environ={}).ip == "0.0.0.0"
    assert parse_settings(["-ip", "0.0.0.0", "--insecure"], environ={}).insecure is True


def test_json_logs_go_to_stderr_and_the_rotating_file(tmp_path) -> None:
    import json
    import signal
    import time

    import httpx

    from servers import ServerProcess

    server = ServerProcess(tmp_path / "data", "--log-format", "json").start()
    httpx.post(f"{server.url}/api/job?type=timing", json={"cron": "0 0 1 1 *", "script": "1"})
    assert server.stop(signal.SIGTERM) == 0
    time.sleep(0.1)
    logged = (tmp_path / "data" / "log" / "traitor.log").read_text().splitlines()
    records = [json.loads(line) for line in logged if line.startswith("{")]
    assert records and {"ts", "level", "logger", "message"} <= set(records[0])
    assert any("engine started" in r["message"] for r in records)
    assert any(line.startswith("{") for line in server.output().splitlines())


def test_the_startup_line_names_version_mode_and_store_without_its_password() -> None:
    import traitor
    from traitor.cli.main import startup_line

    line = startup_line(parse_settings(["-m", "multi", "-r", "redis://:hush@cache:6379/0", "-c", "blue",
                                        "--store", "postgresql://app:s3cret@db/traitor", "--workers", "3"],
                                       environ={}))
    assert line.startswith(f"traitor {traitor.__version__} starting: cluster 'blue' on redis://***@cache:6379/0")
    assert "store postgresql://***@db/traitor" in line and "3 script worker(s)" in line
    assert "hush" not in line and "s3cret" not in line
    assert "standalone, store sqlite:///" in startup_line(parse_settings(["--data-dir", "/tmp/x"], environ={}))
