"""TimingWheel: property test against a heapq + dict reference, and edge cases."""

from __future__ import annotations

import gc
import heapq
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from traitor.scheduler.wheel import TimingWheel

NOW = 1_733_356_800_000  # 2024-12-05T00:00:00Z
DAY = 86_400_000
YEAR = 31_557_600_000


class ReferenceWheel:
    """The specification: a heap of (when, arm sequence, key) with lazy deletion."""

    def __init__(self, now_ms: int) -> None:
        self.now = now_ms
        self.entries: dict[str, tuple[int, int, object]] = {}
        self.heap: list[tuple[int, int, str]] = []
        self.seq = 0

    def arm(self, key: str, when: int, payload: object = None) -> None:
        self.seq += 1
        self.entries[key] = (when, self.seq, payload)
        heapq.heappush(self.heap, (when, self.seq, key))

    def disarm(self, key: str) -> bool:
        return self.entries.pop(key, None) is not None

    def when(self, key: str) -> int | None:
        entry = self.entries.get(key)
        return None if entry is None else entry[0]

    def __len__(self) -> int:
        return len(self.entries)

    def advance(self, now_ms: int) -> list[tuple[int, str, object]]:
        self.now = now_ms
        out = []
        heap = self.heap
        while heap and heap[0][0] <= now_ms:
            when, seq, key = heapq.heappop(heap)
            entry = self.entries.get(key)
            if entry is not None and entry[1] == seq:
                del self.entries[key]
                out.append((when, key, entry[2]))
        return out

    def earliest(self) -> int | None:
        return min((e[0] for e in self.entries.values()), default=None)


# ---------------------------------------------------------------------- strategies

KEYS = [f"job-{i}" for i in range(12)]

# offsets from "now": near, around slot/level boundaries, days, years, backwards
_boundaries = sorted(
    {sign * (1 << b) + d for b in range(0, 50, 2) for d in (-1, 0, 1) for sign in (1, -1)}
)
offsets = st.one_of(
    st.integers(-30, 600),
    st.sampled_from(_boundaries),
    st.integers(-DAY, 30 * DAY),
    st.integers(-2 * YEAR, 200 * YEAR),
)
deltas = st.one_of(
    st.just(0),
    st.integers(1, 300),
    st.integers(-300, -1),
    st.sampled_from([1 << b for b in range(4, 48, 4)] + [DAY, YEAR, 100 * YEAR, -DAY, -YEAR]),
    st.integers(0, 10 * DAY),
    st.integers(-YEAR, 300 * YEAR),
)
payloads = st.one_of(st.none(), st.integers(0, 5))
keys = st.sampled_from(KEYS)

ops = st.lists(
    st.one_of(
        st.tuples(st.just("arm"), keys, offsets, payloads),
        st.tuples(st.just("arm"), keys, offsets, payloads),  # arms twice as likely
        st.tuples(st.just("arm_many"), st.lists(st.tuples(keys, offsets, payloads), max_size=6)),
        st.tuples(st.just("disarm"), keys),
        st.tuples(st.just("advance"), deltas),
        st.tuples(st.just("advance"), deltas),
        st.tuples(st.just("chase")),
        st.tuples(st.just("flush")),
        st.tuples(st.just("prepare"), st.sampled_from([1, 2, 3, 5, 100])),
        st.tuples(st.just("prepare"), st.sampled_from([1, 2, 3, 5, 100])),
        st.tuples(st.just("iter")),
    ),
    min_size=10,
    max_size=60,
)
bases = st.one_of(st.just(NOW), st.integers(-(2**50), 2**50))

CONFIGS = {
    "default": dict(),  # tick 1 ms, 256 slots, 6 levels
    "tiny": dict(tick_ms=1, wheel_size=4, levels=3),  # heavy cascading + far level
    "coarse": dict(tick_ms=7, wheel_size=8, levels=2),  # ticks of several ms
    "seconds": dict(tick_ms=1000, wheel_size=2, levels=1),
    "binary": dict(tick_ms=1, wheel_size=2, levels=10),  # many levels to stage
}


def _check_same(wheel: TimingWheel, ref: ReferenceWheel) -> None:
    assert len(wheel) == len(ref)
    for key in KEYS:
        assert wheel.when(key) == ref.when(key)
        assert (key in wheel) == (key in ref.entries)
        got = wheel.get(key)
        if key in ref.entries:
            when, _, payload = ref.entries[key]
            assert got == (when, payload)
        else:
            assert got is None
    deadline = wheel.next_deadline()
    earliest = ref.earliest()
    if earliest is None:
        assert deadline is None
    else:
        assert deadline is not None and deadline <= earliest


def _run(config: dict, base: int, operations: list) -> None:
    wheel = TimingWheel(base, **config)
    ref = ReferenceWheel(base)
    now = base
    for op in operations:
        kind = op[0]
        if kind == "arm":
            _, key, offset, payload = op
            wheel.arm(key, now + offset, payload)
            ref.arm(key, now + offset, payload)
        elif kind == "arm_many":
            items = [(key, now + offset, payload) for key, offset, payload in op[1]]
            assert wheel.arm_many(items) == len(items)
            for item in items:
                ref.arm(*item)
        elif kind == "disarm":
            assert wheel.disarm(op[1]) == ref.disarm(op[1])
        elif kind == "advance":
            now += op[1]
            assert wheel.advance(now) == ref.advance(now)
            deadline = wheel.next_deadline()
            # liveness: a driver sleeping until next_deadline always makes progress
            assert deadline is None or deadline > now
        elif kind == "flush":
            wheel.flush()  # unobservable
        elif kind == "prepare":
            wheel.prepare(budget=op[1], min_slot=1)  # unobservable
        elif kind == "iter":
            assert set(wheel) == set(ref.entries)
        else:  # chase: follow next_deadline like the driver until something fires
            steps = 0
            while len(ref):
                deadline = wheel.next_deadline()
                assert deadline is not None
                now = max(now, deadline)
                fired = wheel.advance(now)
                assert fired == ref.advance(now)
                steps += 1
                if fired:
                    break
                assert steps <= wheel.levels + 4, "next_deadline does not converge"
        _check_same(wheel, ref)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_matches_reference(name: str) -> None:
    examples = 500 if name == "default" else 150

    @settings(
        max_examples=examples,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(base=bases, operations=ops)
    def check(base: int, operations: list) -> None:
        _run(CONFIGS[name], base, operations)

    check()


# ---------------------------------------------------------------------- edge cases


def test_rearm_replaces_entry() -> None:
    wheel = TimingWheel(NOW)
    wheel.arm("a", NOW + 100, "first")
    wheel.arm("a", NOW + 50, "second")
    assert len(wheel) == 1
    assert wheel.when("a") == NOW + 50
    assert wheel.advance(NOW + 200) == [(NOW + 50, "a", "second")]
    assert len(wheel) == 0 and "a" not in wheel


def test_rearm_with_none_payload_drops_old_payload() -> None:
    wheel = TimingWheel(NOW)
    wheel.arm("a", NOW + 10, object())
    wheel.arm("a", NOW + 10)
    assert wheel.advance(NOW + 10) == [(NOW + 10, "a", None)]


def test_rearm_moves_key_to_end_of_ties() -> None:
    wheel = TimingWheel(NOW)
    for key in "abc":
        wheel.arm(key, NOW + 1000)
    wheel.arm("a", NOW + 1000)
    assert [k for _, k, _ in wheel.advance(NOW + 1000)] == ["b", "c", "a"]


def test_disarm() -> None:
    wheel = TimingWheel(NOW)
    assert wheel.disarm("nope") is False
    wheel.arm("a", NOW + 5)
    assert wheel.disarm("a") is True
    assert wheel.disarm("a") is False
    assert wheel.when("a") is None
    assert wheel.advance(NOW + 10) == []
    assert wheel.next_deadline() is None


def test_past_and_present_instants_are_due_at_next_advance() -> None:
    wheel = TimingWheel(NOW)
    wheel.arm("past", NOW - 5 * DAY)
    wheel.arm("now", NOW)
    wheel.arm("next", NOW + 1)
    assert wheel.next_deadline() == NOW - 5 * DAY
    assert wheel.advance(NOW) == [(NOW - 5 * DAY, "past", None), (NOW, "now", None)]
    assert wheel.next_deadline() == NOW + 1


@pytest.mark.parametrize("ahead", [DAY, YEAR, 5 * YEAR, 150 * YEAR, 20_000 * YEAR])
def test_far_future_entries_cascade(ahead: int) -> None:
    wheel = TimingWheel(NOW)
    at = NOW + ahead
    wheel.arm("far", at, "p")
    wheel.arm("near", NOW + 10)
    assert wheel.advance(at - 1) == [(NOW + 10, "near", None)]
    assert wheel.when("far") == at and len(wheel) == 1
    assert wheel.next_deadline() == at  # after the last cascade it is exact
    assert wheel.advance(at) == [(at, "far", "p")]
    assert len(wheel) == 0 and wheel.next_deadline() is None


def test_far_future_reached_by_following_deadlines() -> None:
    wheel = TimingWheel(NOW)
    at = NOW + 3 * YEAR + 12_345
    wheel.arm("far", at)
    steps, now, fired = 0, NOW, []
    while not fired:
        now = wheel.next_deadline()
        assert now is not None and now <= at
        fired = wheel.advance(now)
        steps += 1
    assert fired == [(at, "far", None)] and steps <= wheel.levels + 1


def test_clock_going_backwards_loses_nothing() -> None:
    wheel = TimingWheel(NOW)
    wheel.arm("a", NOW + 1000)
    wheel.arm("b", NOW + 3 * DAY)
    assert wheel.advance(NOW + DAY) == [(NOW + 1000, "a", None)]
    # the wall clock is stepped back by two days
    back = NOW - DAY
    assert wheel.advance(back) == []
    wheel.arm("c", back + 500)  # armed relative to the new clock
    wheel.arm("d", back + 500)
    assert wheel.next_deadline() == back + 500
    assert wheel.advance(back + 499) == []
    assert wheel.advance(back + 500) == [(back + 500, "c", None), (back + 500, "d", None)]
    assert wheel.advance(NOW) == []
    assert wheel.advance(NOW + 3 * DAY) == [(NOW + 3 * DAY, "b", None)]
    assert len(wheel) == 0


def test_burst_on_one_instant_is_fast_and_in_arm_order() -> None:
    wheel = TimingWheel(NOW)
    at = NOW + 3_600_000
    keys = [f"k{i}" for i in range(10_000)]
    for key in keys:
        wheel.arm(key, at)
    wheel.advance(at - 1)  # cascades done ahead, as a driver's wake-ups would
    t0 = time.perf_counter()
    fired = wheel.advance(at)
    elapsed = time.perf_counter() - t0
    assert [k for _, k, _ in fired] == keys
    assert elapsed < 0.05  # loose functional bound; the benchmark measures it


def test_ticks_of_several_ms_keep_exact_instants() -> None:
    wheel = TimingWheel(NOW, tick_ms=10)  # NOW is a multiple of 10
    wheel.arm("b", NOW + 27)
    wheel.arm("a", NOW + 23)
    wheel.arm("d", NOW + 21)
    wheel.arm("c", NOW + 29)
    assert wheel.advance(NOW + 22) == [(NOW + 21, "d", None)]  # part of a tick
    assert wheel.advance(NOW + 28) == [(NOW + 23, "a", None), (NOW + 27, "b", None)]
    assert wheel.next_deadline() == NOW + 29
    wheel.arm("e", NOW + 25)  # behind the cursor: due at once
    assert wheel.advance(NOW + 40) == [(NOW + 25, "e", None), (NOW + 29, "c", None)]


def test_negative_and_huge_instants() -> None:
    wheel = TimingWheel(-5)
    wheel.arm("neg", -3)
    wheel.arm("pos", 2**70)
    assert wheel.advance(0) == [(-3, "neg", None)]
    assert wheel.advance(2**70) == [(2**70, "pos", None)]


def test_arm_many_and_iteration() -> None:
    wheel = TimingWheel(NOW)
    n = wheel.arm_many((f"k{i}", NOW + i * 997, i) for i in range(1000))
    assert n == 1000 and len(wheel) == 1000 and set(wheel) == {f"k{i}" for i in range(1000)}
    fired = wheel.advance(NOW + 1000 * 997)
    assert [(w, p) for w, _, p in fired] == [(NOW + i * 997, i) for i in range(1000)]


def test_clear() -> None:
    wheel = TimingWheel(NOW)
    wheel.arm_many((f"k{i}", NOW + i * 10**6, None) for i in range(100))
    wheel.arm("late", NOW - 1)
    wheel.clear()
    assert len(wheel) == 0 and wheel.next_deadline() is None
    assert wheel.advance(NOW + 10**9) == []


def test_instants_must_be_integers() -> None:
    wheel = TimingWheel(NOW)
    with pytest.raises(TypeError):
        wheel.arm("a", NOW + 0.5)  # type: ignore[arg-type]
    assert len(wheel) == 0


@pytest.mark.parametrize(
    "kwargs", [dict(tick_ms=0), dict(wheel_size=3), dict(wheel_size=1), dict(levels=0)]
)
def test_invalid_construction(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        TimingWheel(NOW, **kwargs)


def test_default_levels_cover_a_century() -> None:
    for kwargs in (dict(), dict(wheel_size=64), dict(tick_ms=10, wheel_size=16)):
        assert TimingWheel(NOW, **kwargs).span_ms > 100 * YEAR


def test_entries_are_invisible_to_the_cyclic_gc() -> None:
    gc.collect()
    wheel = TimingWheel(NOW)
    before = len(gc.get_objects())
    wheel.arm_many((f"k{i}", NOW + i * 37, None) for i in range(20_000))
    wheel.advance(NOW + 10_000)  # some cascades and emissions
    gc.collect()
    assert len(gc.get_objects()) - before < 50


def test_handed_out_entries_leave_no_residue() -> None:
    wheel = TimingWheel(NOW)
    wheel.arm_many((f"k{i}", NOW + 10, i) for i in range(100))
    assert len(wheel.advance(NOW + 10)) == 100
    assert len(wheel) == 0 and "k1" not in wheel and wheel.when("k1") is None
    wheel.arm("k1", NOW + 20)  # re-armed before the deferred clean-up
    assert wheel.advance(NOW + 15) == []  # the next advance cleans up first
    assert wheel._index == {"k1": NOW + 20} and wheel._payloads == {}
    assert wheel.advance(NOW + 20) == [(NOW + 20, "k1", None)]
    wheel.flush()
    assert wheel._index == {} and wheel._fired == {}


# Staging (prepare) only matters when several entries share an upcoming slot:
# crowd a few keys into a small wheel, near its level boundaries.
crowded_ops = st.lists(
    st.one_of(
        st.tuples(st.just("arm"), keys, st.integers(-3, 300), payloads),
        st.tuples(st.just("arm"), keys, st.integers(0, 80), payloads),
        st.tuples(st.just("disarm"), keys),
        st.tuples(st.just("advance"), st.integers(0, 40)),
        st.tuples(st.just("prepare"), st.integers(1, 4)),
        st.tuples(st.just("prepare"), st.integers(1, 4)),
        st.tuples(st.just("flush")),
        st.tuples(st.just("chase")),
    ),
    min_size=30,
    max_size=120,
)


@pytest.mark.parametrize("wheel_size", [2, 4])
def test_staging_matches_reference(wheel_size: int) -> None:
    @settings(
        max_examples=150,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(base=st.integers(NOW, NOW + 4096), operations=crowded_ops)
    def check(base: int, operations: list) -> None:
        _run(dict(wheel_size=wheel_size, levels=6), base, operations)

    check()


def test_prepare_stages_a_big_slot_ahead_of_its_cascade() -> None:
    block = 1 << 16  # a level-2 slot of the default wheel spans 65,536 ms
    base = (NOW // block) * block
    wheel = TimingWheel(base)
    n = 5000
    start = base + block  # the next level-2 slot
    wheel.arm_many((f"k{i}", start + (i * 7919) % block, i) for i in range(n))
    wheel.arm("other", base + 10)
    budget_steps = 0
    while wheel.prepare(budget=512, min_slot=100):
        budget_steps += 1
        if budget_steps == 3:
            wheel.disarm("k0")  # still undrained
            wheel.disarm("k1")  # drained already (in a part)
            wheel.arm("k2", start + 5)  # re-armed into the slot being staged
            wheel.arm("new", start + 5)
    assert budget_steps >= n // 512
    assert wheel.advance(base + 10) == [(base + 10, "other", None)]
    fired = wheel.advance(start + block - 1)
    expected = sorted(
        [(start + (i * 7919) % block, f"k{i}", i) for i in range(3, n)]
        + [(start + 5, "k2", None), (start + 5, "new", None)],
        key=lambda e: e[0],
    )
    assert fired == expected
    assert len(wheel) == 0


# A slot staged a little at a time while its entries are disarmed and re-armed.
_stage_arms = st.lists(st.tuples(st.just("arm"), keys, st.integers(64, 127), payloads),
                       min_size=4, max_size=12)
_stage_ops = st.lists(
    st.one_of(
        st.tuples(st.just("prepare"), st.just(1)),
        st.tuples(st.just("prepare"), st.integers(1, 3)),
        st.tuples(st.just("disarm"), keys),
        st.tuples(st.just("arm"), keys, st.integers(60, 130), payloads),
        st.tuples(st.just("advance"), st.integers(0, 20)),
        st.tuples(st.just("flush")),
    ),
    min_size=5,
    max_size=40,
)


def test_partly_staged_slot_matches_reference() -> None:
    @settings(max_examples=200, derandomize=True, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(shift=st.integers(0, 3), arms=_stage_arms, operations=_stage_ops)
    def check(shift: int, arms: list, operations: list) -> None:
        base = (NOW // 256) * 256 + shift  # the next level-3 slot starts at +64
        _run(dict(wheel_size=4, levels=6), base, arms + operations + [("advance", 200)])

    check()
