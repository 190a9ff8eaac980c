"""The consistent-hash ring: every node computes the same owner; load is even; few jobs move."""

from __future__ import annotations

import random
import uuid

import pytest

from traitor.cluster.ring import DEFAULT_VNODES, HashRing, stable_hash


def job_ids(n: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    return [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(n)]


JOBS = job_ids(10_000)


def shares(ring: HashRing, keys: list[str]) -> dict[str, int]:
    counts = {member: 0 for member in ring.members}
    for key in keys:
        counts[ring.owner(key)] += 1  # type: ignore[index]
    return counts


def test_the_hash_and_the_placement_are_pinned() -> None:
    # BLAKE2b-64 of the UTF-8 text. A change here would move jobs between the nodes of a
    # cluster whose nodes run different Traitor versions during a rolling upgrade.
    assert stable_hash("job-1") == 0x01E636A65307B56B
    assert stable_hash("") == 0xE4A6A0577479B2B4
    ring = HashRing(["node1", "node2", "node3"])
    assert [ring.owner(k) for k in "abcdef"] == ["node3", "node1", "node3", "node1", "node2", "node3"]


def test_same_members_same_owner_whatever_the_order() -> None:
    a = HashRing(["node1", "node2", "node3"])
    b = HashRing(["node3", "node1", "node2", "node1"])
    assert a == b and a.members == ("node1", "node2", "node3")
    assert all(a.owner(key) == b.owner(key) for key in JOBS)


def test_empty_and_single_member_rings() -> None:
    assert HashRing([]).owner("x") is None
    assert not HashRing([])
    solo = HashRing(["only"])
    assert all(solo.owner(key) == "only" for key in JOBS[:500])


@pytest.mark.parametrize("members", [["node1", "node2", "node3"], ["a", "b", "c"],
                                     ["10.0.0.1:8080", "10.0.0.2:8080", "10.0.0.3:8080"]])
def test_10k_jobs_over_3_nodes_within_15_percent_of_even(members: list[str]) -> None:
    counts = shares(HashRing(members), JOBS)
    even = len(JOBS) / 3
    assert all(abs(c - even) / even <= 0.15 for c in counts.values()), counts


def test_balance_holds_for_many_member_sets() -> None:
    """Not luck with three names: 30 random sets of 3 names, all within +-15 %."""
    rng = random.Random(11)
    worst = 0.0
    for _ in range(30):
        ring = HashRing([f"node-{rng.getrandbits(48):x}" for _ in range(3)])
        counts = shares(ring, JOBS[:6000])
        worst = max(worst, max(abs(c - 2000) / 2000 for c in counts.values()))
    assert worst <= 0.15, worst


def test_a_joining_node_takes_only_its_share_from_the_others() -> None:
    before = HashRing(["node1", "node2", "node3"])
    after = HashRing(["node1", "node2", "node3", "node4"])
    moved = [key for key in JOBS if before.owner(key) != after.owner(key)]
    assert all(after.owner(key) == "node4" for key in moved)  # nothing moves between old nodes
    assert 0.25 * 0.8 <= len(moved) / len(JOBS) <= 0.25 * 1.2


def test_a_leaving_node_hands_over_only_its_own_jobs() -> None:
    before = HashRing(["node1", "node2", "node3", "node4"])
    after = HashRing(["node1", "node2", "node4"])
    for key in JOBS:
        if before.owner(key) != "node3":
            assert after.owner(key) == before.owner(key)
        else:
            assert after.owner(key) in ("node1", "node2", "node4")
    # The dead node's jobs spread over all the survivors, not onto one neighbour.
    inherited = shares(HashRing(["node1", "node2", "node4"]), [k for k in JOBS if before.owner(k) == "node3"])
    assert min(inherited.values()) > 0.5 * max(inherited.values())


def test_vnodes_setting() -> None:
    assert HashRing(["x"]).vnodes == DEFAULT_VNODES
    with pytest.raises(ValueError):
        HashRing(["x"], vnodes=0)
