"""Job and run ids: random version-4 UUIDs in canonical text form, as the original's
clients parse them."""

from __future__ import annotations

import os
import uuid

import pytest

from traitor.domain import job as job_module
from traitor.domain.job import new_id


def test_ids_are_canonical_random_version_4_uuids() -> None:
    ids = [new_id() for _ in range(20_000)]
    for text in ids:
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122
    assert len(set(ids)) == len(ids)


def test_every_hex_digit_appears_in_the_random_positions() -> None:
    ids = [new_id().replace("-", "") for _ in range(2_000)]
    random_positions = [i for i in range(32) if i not in (12, 16)]
    for position in random_positions:
        assert len({text[position] for text in ids}) == 16, position
    assert {text[16] for text in ids} == set("89ab")


def test_random_bytes_are_read_for_many_ids_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[int] = []
    real = os.urandom

    def urandom(size: int) -> bytes:
        reads.append(size)
        return real(size)

    monkeypatch.setattr(job_module.os, "urandom", urandom)
    job_module._random_hex.clear()
    ids = [new_id() for _ in range(1000)]
    assert len(set(ids)) == 1000
    assert reads == [16 * 256] * 4  # ceil(1000 / 256) reads, not one per id


def test_run_ids_are_version_7_uuids_that_sort_by_time() -> None:
    from traitor.domain.job import new_run_id

    ids = [new_run_id(1_800_000_000_000 + i) for i in range(2_000)]
    for text in ids:
        parsed = uuid.UUID(text)
        assert str(parsed) == text and parsed.version == 7 and parsed.variant == uuid.RFC_4122
        assert parsed.int >> 80 == 1_800_000_000_000 + ids.index(text)  # the 48-bit ms prefix
    assert sorted(ids) == ids  # one per ms here: later is larger
    assert len({new_run_id(1_800_000_000_000) for _ in range(1_000)}) == 1_000  # same ms: still unique
