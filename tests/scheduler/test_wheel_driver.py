"""WheelDriver on a real asyncio loop (real wall clock unless stated)."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from typing import Callable

import pytest

from traitor.domain.timeutil import now_ms
from traitor.scheduler.wheel import LatenessStats, TimingWheel, WheelDriver

LATE_MS = 50  # loose functional bound, not a performance target


class LoopLag:
    """Measures how long the event loop (or the whole process) was stalled.

    A 1 ms heartbeat on the same loop records its worst overshoot: when the machine
    is overloaded (other test suites on two cores), the driver cannot be on time
    either, so the lateness bound is ``LATE_MS`` plus the stall seen meanwhile. A
    driver that sleeps past an instant by itself is still caught."""

    def __init__(self) -> None:
        self.max_ms = 0.0
        self._task: asyncio.Task | None = None

    async def _beat(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            t0 = loop.time()
            await asyncio.sleep(0.001)
            self.max_ms = max(self.max_ms, (loop.time() - t0 - 0.001) * 1000)

    def __enter__(self) -> "LoopLag":
        self._task = asyncio.get_running_loop().create_task(self._beat())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()

    @property
    def bound(self) -> float:
        return LATE_MS + self.max_ms


@pytest.fixture
async def lag():
    with LoopLag() as probe:
        yield probe


async def wait_until(predicate: Callable[[], bool], timeout: float = 2.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.002)


class Recorder:
    """on_due that records (clock at the call, batch)."""

    def __init__(self, clock: Callable[[], int] = now_ms) -> None:
        self.clock = clock
        self.batches: list[tuple[int, list[tuple[int, str, object]]]] = []
        self.hook: Callable[[list], None] | None = None

    def __call__(self, batch: list[tuple[int, str, object]]) -> None:
        self.batches.append((self.clock(), list(batch)))
        if self.hook is not None:
            self.hook(batch)

    @property
    def fires(self) -> list[tuple[int, int, str, object]]:
        return [(at, w, k, p) for at, batch in self.batches for w, k, p in batch]

    @property
    def keys(self) -> list[str]:
        return [k for _, _, k, _ in self.fires]


async def test_entries_fire_on_time(lag: LoopLag) -> None:
    rec = Recorder()
    driver = WheelDriver(TimingWheel(now_ms()), rec)
    driver.start()  # empty wheel: sleeps max_sleep_ms; arming must move the wake-up
    base = now_ms()
    offsets = [50, 75, 100, 101, 150, 200, 250, 300, 300]
    for i, off in enumerate(offsets):
        driver.arm(f"k{i}", base + off, i)
    await wait_until(lambda: len(rec.fires) == len(offsets))
    driver.stop()
    assert sorted(rec.keys) == sorted(f"k{i}" for i in range(len(offsets)))
    for at, when, key, payload in rec.fires:
        assert when <= at <= when + lag.bound, (key, at - when, lag.max_ms)
        assert payload == int(key[1:])
    assert [w for _, w, _, _ in rec.fires] == sorted(base + o for o in offsets)
    assert driver.stats.fires == len(offsets)
    assert 0 <= driver.stats.min_ms <= driver.stats.max_ms <= lag.bound


async def test_earlier_arm_moves_the_wake_up(lag: LoopLag) -> None:
    rec = Recorder()
    driver = WheelDriver(TimingWheel(now_ms()), rec, max_sleep_ms=5000)
    base = now_ms()
    driver.arm("late", base + 2000)
    driver.start()
    driver.arm("early", base + 60)
    await wait_until(lambda: rec.keys == ["early"])
    at, when, _, _ = rec.fires[0]
    assert when <= at <= when + lag.bound
    driver.stop()


async def test_cold_start_with_arm_many() -> None:
    wheel = TimingWheel(now_ms())
    base = now_ms()
    wheel.arm_many([("overdue", base - 10_000, None), ("soon", base + 50, None)])
    rec = Recorder()
    driver = WheelDriver(wheel, rec)
    driver.start()
    await wait_until(lambda: len(rec.fires) == 2)
    driver.stop()
    assert rec.keys == ["overdue", "soon"]
    assert len(rec.batches) == 2  # the overdue one fired at once, alone


async def test_arm_inside_on_due_for_same_or_past_instant_fires_on_next_wake(
    lag: LoopLag,
) -> None:
    rec = Recorder()
    driver = WheelDriver(TimingWheel(now_ms()), rec)

    def hook(batch: list) -> None:
        if batch[0][1] == "first":
            when = batch[0][0]
            driver.arm("same", when)
            driver.arm("past", when - 1000)
            driver.arm("first", when)  # re-arm of the key just handed over

    rec.hook = hook
    driver.start()
    driver.arm("first", now_ms() + 50)
    await wait_until(lambda: len(rec.batches) >= 2)
    await asyncio.sleep(0.05)
    driver.stop()
    assert len(rec.batches) == 2
    (at1, b1), (at2, b2) = rec.batches
    assert [k for _, k, _ in b1] == ["first"]
    w = b1[0][0]
    assert b2 == [(w - 1000, "past", None), (w, "same", None), (w, "first", None)]
    assert at2 - at1 <= lag.bound


async def test_rearm_from_on_due_for_later_instants_never_fires_twice(lag: LoopLag) -> None:
    rec = Recorder()
    driver = WheelDriver(TimingWheel(now_ms()), rec)
    count = Counter[str]()

    reschedules_in_dispatch = []

    def hook(batch: list) -> None:
        before = len(reschedules)
        for when, key, _ in batch:
            count[key] += 1
            if count[key] < 5:
                driver.arm(key, when + 20)
        reschedules_in_dispatch.append(len(reschedules) - before)

    rec.hook = hook
    reschedules: list[int] = []
    original = driver._reschedule

    def counting_reschedule() -> None:
        reschedules.append(1)
        original()

    driver._reschedule = counting_reschedule  # type: ignore[method-assign]
    driver.start()
    base = now_ms() + 30
    driver.arm("a", base)
    driver.arm("b", base + 3)
    await wait_until(lambda: len(rec.fires) == 10)
    await asyncio.sleep(0.1)
    driver.stop()
    assert count == {"a": 5, "b": 5}
    assert set(reschedules_in_dispatch) == {0}  # one wake-up computed after on_due
    for key, start in (("a", base), ("b", base + 3)):
        whens = [w for _, w, k, _ in rec.fires if k == key]
        assert whens == [start + 20 * i for i in range(5)]
    for at, when, _, _ in rec.fires:
        assert when <= at <= when + lag.bound
    assert len(driver.wheel) == 0


async def test_disarm_prevents_a_fire() -> None:
    rec = Recorder()
    driver = WheelDriver(TimingWheel(now_ms()), rec)
    driver.start()
    base = now_ms()
    driver.arm("a", base + 50)
    driver.arm("b", base + 50)
    driver.arm("c", base + 80)
    assert driver.disarm("a") is True
    assert driver.disarm("zzz") is False
    await wait_until(lambda: len(rec.fires) == 2)
    driver.disarm("c")  # already fired: nothing to do
    await asyncio.sleep(0.1)
    driver.stop()
    assert rec.keys == ["b", "c"]


async def test_stop_stops_firing_and_start_resumes() -> None:
    rec = Recorder()
    driver = WheelDriver(TimingWheel(now_ms()), rec)
    driver.start()
    driver.arm("a", now_ms() + 50)
    driver.stop()
    assert not driver.running
    await asyncio.sleep(0.15)
    assert rec.fires == []
    assert driver.when("a") is not None  # still armed
    driver.start()  # overdue by ~100 ms: fires at once
    await wait_until(lambda: rec.keys == ["a"])
    driver.stop()


async def test_stop_from_inside_on_due() -> None:
    rec = Recorder()
    driver = WheelDriver(TimingWheel(now_ms()), rec)
    rec.hook = lambda batch: driver.stop()
    driver.start()
    base = now_ms()
    driver.arm("a", base + 30)
    driver.arm("b", base + 60)
    await wait_until(lambda: rec.keys == ["a"])
    await asyncio.sleep(0.1)
    assert rec.keys == ["a"] and driver.when("b") == base + 60


async def test_burst_is_handed_over_in_one_call(lag: LoopLag) -> None:
    rec = Recorder()
    wheel = TimingWheel(now_ms())
    driver = WheelDriver(wheel, rec)
    at = now_ms() + 100
    wheel.arm_many((f"job-{i}", at, None) for i in range(10_000))
    driver.start()
    await wait_until(lambda: rec.batches)
    driver.stop()
    assert len(rec.batches) == 1
    fired_at, batch = rec.batches[0]
    assert [k for _, k, _ in batch] == [f"job-{i}" for i in range(10_000)]
    assert at <= fired_at <= at + lag.bound


async def test_failing_callback_is_reported_and_driver_continues() -> None:
    loop = asyncio.get_running_loop()
    errors: list[dict] = []
    loop.set_exception_handler(lambda _loop, ctx: errors.append(ctx))
    try:
        rec = Recorder()

        def hook(batch: list) -> None:
            if batch[0][1] == "boom":
                raise RuntimeError("callback failed")

        rec.hook = hook
        driver = WheelDriver(TimingWheel(now_ms()), rec)
        driver.start()
        base = now_ms()
        driver.arm("boom", base + 20)
        driver.arm("after", base + 60)
        await wait_until(lambda: rec.keys == ["boom", "after"])
        driver.stop()
        assert len(errors) == 1 and isinstance(errors[0]["exception"], RuntimeError)
    finally:
        loop.set_exception_handler(None)


async def test_wall_clock_jumps_are_noticed(lag: LoopLag) -> None:
    offset = [0]

    def clock() -> int:
        return now_ms() + offset[0]

    day = 86_400_000
    rec = Recorder(clock)
    driver = WheelDriver(TimingWheel(clock()), rec, clock=clock, max_sleep_ms=20)
    driver.start()
    driver.arm("tomorrow", clock() + day)
    driver.arm("soon", clock() + 100)
    offset[0] -= day  # stepped back a day: "soon" now waits a day more
    await asyncio.sleep(0.25)
    assert rec.fires == []
    offset[0] += 2 * day  # stepped forward past both
    jumped_at = clock()
    await wait_until(lambda: len(rec.fires) == 2, timeout=1.0)
    driver.stop()
    assert rec.keys == ["soon", "tomorrow"]
    assert len(rec.batches) == 1
    # noticed within one capped sleep (20 ms) of the jump
    assert rec.batches[0][0] - jumped_at <= 20 + lag.bound


async def test_random_load_never_misses_never_repeats(lag: LoopLag) -> None:
    rnd = random.Random(1234)
    rec = Recorder()
    driver = WheelDriver(TimingWheel(now_ms()), rec)
    expected = Counter[str]()
    rearmed: set[str] = set()

    def hook(batch: list) -> None:
        for when, key, _ in batch:
            if key not in rearmed and rnd.random() < 0.1:
                rearmed.add(key)
                expected[key] += 1
                driver.arm(key, when + rnd.randint(-5, 60))
            if rnd.random() < 0.02:  # disarm some other pending key
                victim = f"k{rnd.randrange(2000)}"
                if driver.disarm(victim):
                    expected[victim] -= 1

    rec.hook = hook
    driver.start()
    base = now_ms()
    for i in range(2000):
        driver.arm(f"k{i}", base + rnd.randint(-20, 300), i)
        expected[f"k{i}"] += 1
    for i in rnd.sample(range(2000), 200):
        if driver.disarm(f"k{i}"):
            expected[f"k{i}"] -= 1
    expected = +expected  # drop zero counts
    await wait_until(lambda: len(driver.wheel) == 0, timeout=3.0)
    await asyncio.sleep(0.05)
    driver.stop()
    assert Counter(rec.keys) == expected
    for at, when, key, _ in rec.fires:
        assert when <= at, key  # never early
        assert at <= max(when, base) + lag.bound, (key, at - when, lag.max_ms)


def test_lateness_stats() -> None:
    stats = LatenessStats()
    assert stats.quantile(0.99) is None and stats.mean_ms is None
    stats.record(1000, [(1000, "a", None)] * 98)
    stats.record(1000, [(960, "x", None), (996, "y", None)])
    assert stats.fires == 100 and stats.batches == 2
    assert stats.min_ms == 0 and stats.max_ms == 40
    assert stats.quantile(0.5) == 0
    assert stats.quantile(0.99) == 5  # bucket bound above 4 ms
    assert stats.quantile(1.0) == 40
    assert stats.mean_ms == pytest.approx(44 / 100)
    assert stats.as_dict()["fires"] == 100
    stats.reset()
    assert stats.fires == 0


async def test_upcoming_cascades_are_staged_in_idle_time(lag: LoopLag) -> None:
    wheel = TimingWheel(now_ms())
    block = 256  # a level-1 slot of the default wheel
    start = (now_ms() // block + 2) * block  # a level-1 slot 256..511 ms ahead
    n = 3000
    wheel.arm_many((f"k{i}", start + i % block, i) for i in range(n))
    rec = Recorder()
    driver = WheelDriver(wheel, rec, prepare_budget=500)
    driver.start()
    await asyncio.sleep(0.05)
    slot = wheel._stg_slot[1]
    assert slot >= 0 and wheel._stg_iter[1] is None  # staged completely, ahead of time
    driver.arm("late-comer", start + 3)  # goes to the staged slot's tail
    await wait_until(lambda: len(wheel) == 0)
    driver.stop()
    assert sorted(rec.keys) == sorted([f"k{i}" for i in range(n)] + ["late-comer"])
    for at, when, key, _ in rec.fires:
        assert when <= at <= when + lag.bound, (key, at - when)


async def test_prepare_can_be_turned_off() -> None:
    wheel = TimingWheel(now_ms())
    start = (now_ms() // 256 + 2) * 256
    wheel.arm_many((f"k{i}", start + i % 256, None) for i in range(3000))
    rec = Recorder()
    driver = WheelDriver(wheel, rec, prepare_budget=0)
    driver.start()
    await asyncio.sleep(0.05)
    assert wheel._stg_slot[1] == -1
    await wait_until(lambda: len(wheel) == 0)
    driver.stop()
    assert len(rec.fires) == 3000
