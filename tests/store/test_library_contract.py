"""The library part of the store contract (``traitor.store.abc``: "libraries"), run
against every backend through the ``store`` / ``backend`` fixtures of ``conftest.py``."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from traitor.domain.errors import ConflictError, NotFoundError
from traitor.domain.library import LibraryVersion
from traitor.store import JobStore


async def test_versions_are_appended_and_old_ones_stay_readable(store: JobStore) -> None:
    first = await store.add_library_version("fmt", "exports.v = 1;", create=True)
    assert isinstance(first, LibraryVersion)
    assert (first.name, first.version, first.source) == ("fmt", 1, "exports.v = 1;")
    second = await store.add_library_version("fmt", "exports.v = 2;", create=False)
    third = await store.add_library_version("fmt", "exports.v = 3;")
    assert (second.version, third.version) == (2, 3)
    assert third.created_at >= second.created_at >= first.created_at

    latest = await store.get_library("fmt")
    assert latest == third
    assert await store.get_library("fmt", 1) == first
    assert await store.get_library("fmt", 2) == second
    assert await store.get_library("fmt", 4) is None
    assert await store.get_library("nope") is None
    assert await store.get_library("nope", 1) is None

    versions = await store.list_library_versions("fmt")
    assert [v.version for v in versions] == [3, 2, 1]
    assert versions[0].size == len("exports.v = 3;") and versions[0].created_at == third.created_at
    assert await store.list_library_versions("nope") == []


async def test_create_and_update_modes(store: JobStore) -> None:
    await store.add_library_version("a", "1", create=True)
    with pytest.raises(ConflictError):
        await store.add_library_version("a", "again", create=True)
    with pytest.raises(NotFoundError):
        await store.add_library_version("missing", "x", create=False)
    assert await store.get_library("missing") is None
    assert [v.version for v in await store.list_library_versions("a")] == [1]
    # The store still works after the refused writes.
    assert (await store.add_library_version("a", "2", create=False)).version == 2


async def test_list_libraries_sorted_with_latest_version(store: JobStore) -> None:
    for name in ("zeta", "alpha", "mid-dle", "b_2"):
        await store.add_library_version(name, f"// {name} v1")
    await store.add_library_version("alpha", "// alpha v2, longer")
    listed = await store.list_libraries()
    assert [info.name for info in listed] == ["alpha", "b_2", "mid-dle", "zeta"]
    alpha = listed[0]
    assert alpha.version == 2 and alpha.size == len("// alpha v2, longer")
    assert alpha.updated_at >= alpha.created_at
    assert all(info.version == 1 for info in listed[1:])


async def test_delete_and_numbers_are_never_reused(store: JobStore) -> None:
    await store.add_library_version("gone", "v1")
    await store.add_library_version("gone", "v2")
    assert await store.delete_library("gone") is True
    assert await store.delete_library("gone") is False
    assert await store.delete_library("never") is False
    assert await store.get_library("gone") is None
    assert await store.get_library("gone", 1) is None
    assert await store.list_library_versions("gone") == []
    assert [info.name for info in await store.list_libraries()] == []
    with pytest.raises(NotFoundError):
        await store.add_library_version("gone", "v?", create=False)

    again = await store.add_library_version("gone", "new life", create=True)
    assert again.version == 3  # (name, version) names one source forever
    assert await store.get_library("gone", 2) is None
    assert [v.version for v in await store.list_library_versions("gone")] == [3]
    info = (await store.list_libraries())[0]
    assert (info.name, info.version, info.created_at) == ("gone", 3, again.created_at)


async def test_concurrent_writers_each_get_their_own_version(backend: Any) -> None:
    first = await backend.open("shared")
    second = await backend.open("shared")  # another instance (own connections) on the same data
    await first.add_library_version("hot", "v0", create=True)

    async def write(store: JobStore, i: int) -> int:
        return (await store.add_library_version("hot", f"writer {i}", create=False)).version

    numbers = await asyncio.gather(*(write(first if i % 2 else second, i) for i in range(40)))
    assert sorted(numbers) == list(range(2, 42))
    versions = await first.list_library_versions("hot")
    assert [v.version for v in versions] == list(range(41, 0, -1))
    latest = await second.get_library("hot")
    assert latest is not None and latest.version == 41
    for number, i in zip(numbers, range(40)):
        stored = await first.get_library("hot", number)
        assert stored is not None and stored.source == f"writer {i}"


async def test_concurrent_creates_of_one_name_one_wins(backend: Any) -> None:
    first = await backend.open("race")
    second = await backend.open("race")
    results = await asyncio.gather(
        *(s.add_library_version("once", f"by {i}", create=True) for i, s in enumerate([first, second] * 3)),
        return_exceptions=True,
    )
    won = [r for r in results if isinstance(r, LibraryVersion)]
    assert len(won) == 1 and won[0].version == 1
    assert all(isinstance(r, ConflictError) for r in results if r not in won)


async def test_library_text_round_trips(store: JobStore) -> None:
    source = "module.exports = 'naïve ☃ \U0001F600 \\u0000';\n// ünïcödé\n" + "x".join("y" * 100 for _ in range(5000))
    stored = await store.add_library_version("text", source)
    assert (await store.get_library("text")).source == source
    assert stored.size == len(source.encode())
    nul = await store.add_library_version("text", "a\x00b")
    assert (await store.get_library("text", nul.version)).source == "a\x00b"


async def test_libraries_are_kept_per_namespace(backend: Any) -> None:
    red = await backend.open("red")
    blue = await backend.open("blue")
    await red.add_library_version("shared-name", "red")
    assert await blue.get_library("shared-name") is None
    assert await blue.list_libraries() == []
    await blue.add_library_version("shared-name", "blue")
    assert (await red.get_library("shared-name")).source == "red"
