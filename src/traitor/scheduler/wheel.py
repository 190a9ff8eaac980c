"""A hierarchical timing wheel keyed by absolute instants, and its asyncio driver.

:class:`TimingWheel` (Varghese & Lauck's scheme 7, as in Linux's timer wheel and
Kafka's purgatory) holds every armed job as one compact entry and answers "what is
due at or before ``now``" without looking at anything that is not due.

Semantics (exact, whatever the internal layout)
-----------------------------------------------
``advance(now)`` returns *exactly* the armed entries whose instant is ``<= now``, as
``(when_ms, key, payload)`` ordered by ``when_ms`` and, for equal instants, by arm
order (a re-arm counts as a new arm), and removes them. One entry per key: arming an
armed key replaces its entry. This is what a heap keyed by ``(when, arm sequence)``
would return; the property tests check the wheel against exactly that.

Time going backwards (wall clock stepped back): ``advance`` with an earlier ``now``
never loses or repeats an entry; entries simply wait until ``now`` reaches their
instant again. The wheel's internal cursor never moves back: entries armed for
instants below its high-water mark (``bound``) are kept in a small "late" map
(a heap of distinct instants, each holding a bucket of keys in arm order), so while
the clock runs behind its high-water mark such arms cost ``O(log d)`` (``d`` distinct
late instants) instead of ``O(1)``. Arming an instant that is already due (misfire
catch-up, "run now") uses the same map and is due at the next ``advance`` whose
``now`` is at or after it.

Layout
------
* Time is counted in ticks of ``tick_ms`` (default 1 ms). ``wheel_size`` (a power of
  two, default 256) slots per level, ``levels`` array levels (default: enough for
  ``wheel_size ** levels`` ticks to exceed 100 years: 6 levels of 256 x 1 ms cover
  2**48 ms = 8,900 years). Beyond the array levels, a sparse *far* level keyed by the
  tick's high bits (a dict plus a heap of its keys) takes any instant at all, so there
  is no overflow case.
* Absolute placement (Linux style): an entry for tick ``t`` with cursor ``cur`` lives
  at the level of the highest base-``wheel_size`` digit in which ``t`` and ``cur``
  differ, in the slot given by ``t``'s digit at that level. Hence its location is a
  pure function of ``(when, cur)``: no per-entry back reference is needed for an O(1)
  disarm. When the cursor enters a non-empty slot's range, the slot is cascaded
  (each entry re-placed one or more levels lower); each entry cascades at most
  ``levels`` times in its life.
* A slot is a plain ``dict`` ``key -> when_ms``; a key index ``key -> when_ms``
  (sharing the same int object) gives ``when()``, ``len()`` and ``in``; payloads
  live in a third dict only for entries whose payload is not ``None``. So an entry
  costs two dict items and one int, about 105 B (+ about 30 B with a payload) at a
  million entries, and no entry is a GC-tracked container: the wheel adds nothing to
  the cyclic collector's work (payload objects themselves are the caller's).
* ``advance`` hands a whole slot out and keeps that dict as the set of keys whose
  index items are still to be deleted (:meth:`flush`): deleting from a
  million-entry dict costs a cache miss per key, so a burst is handed out first and
  cleaned up after ``on_due``, and a key re-armed from ``on_due`` (a cron job) just
  overwrites its index item.
* Cascading is bursty: entering a level-2 slot (65 s) re-places every entry in it,
  e.g. 0.7 s of CPU for a million every-minute jobs. :meth:`prepare` does that work
  ahead of time in small steps (the driver runs it between wake-ups), so that
  entering the slot only installs pre-split dicts one level lower.
* Each array level keeps an occupancy bitmap (one Python int), so finding the next
  event (an emission at level 0 or a cascade point above) costs a few integer
  operations per level: ``next_deadline()`` and ``advance()`` skip empty time of any
  length (years) without visiting empty slots.

Not thread-safe: use a wheel from one thread (the event loop's).
"""

from __future__ import annotations

import asyncio
import math
import time
from bisect import bisect_left
from heapq import heapify, heappop, heappush
from itertools import islice
from operator import index as _as_int
from operator import itemgetter
from typing import Callable, Iterable, Iterator

from traitor.domain.timeutil import now_ms as _wall_now_ms

__all__ = ["TimingWheel", "WheelDriver", "LatenessStats"]


def _fine_wall_now_ms() -> float:
    return time.time_ns() / 1e6


Due = list[tuple[int, str, object]]

_YEAR_MS = 31_557_600_000  # 365.25 days in ms
_DEFAULT_SPAN_MS = 100 * _YEAR_MS
_WHEN = itemgetter(0)


class TimingWheel:
    """Hierarchical timing wheel over absolute instants (integer ms since the epoch).

    ``arm``/``disarm``/``when`` are O(1); ``advance`` costs O(entries returned +
    cascaded entries + levels); ``next_deadline`` is O(levels). See the module
    docstring for the exact semantics, including a wall clock that goes backwards.
    """

    __slots__ = (
        "_tick",
        "_bits",
        "_mask",
        "_levels",
        "_shifts",
        "_lvl",
        "_top_shift",
        "_top_limit",
        "_slots",
        "_bm",
        "_far",
        "_far_heap",
        "_late",
        "_late_heap",
        "_index",
        "_payloads",
        "_fired",
        "_stg_slot",
        "_stg_src",
        "_stg_iter",
        "_stg_parts",
        "_stg_dead",
        "_now",
        "_bound",
        "_cur",
    )

    def __init__(
        self,
        now_ms: int,
        tick_ms: int = 1,
        wheel_size: int = 256,
        levels: int | None = None,
    ) -> None:
        now_ms = _as_int(now_ms)
        tick_ms = _as_int(tick_ms)
        wheel_size = _as_int(wheel_size)
        if tick_ms < 1:
            raise ValueError("tick_ms must be >= 1")
        if wheel_size < 2 or wheel_size & (wheel_size - 1):
            raise ValueError("wheel_size must be a power of two >= 2")
        if levels is None:
            levels = 1
            while wheel_size**levels * tick_ms <= _DEFAULT_SPAN_MS:
                levels += 1
        levels = _as_int(levels)
        if levels < 1:
            raise ValueError("levels must be >= 1")
        bits = wheel_size.bit_length() - 1
        self._tick = tick_ms
        self._bits = bits
        self._mask = wheel_size - 1
        self._levels = levels
        self._shifts = tuple(bits * level for level in range(levels))
        self._top_shift = bits * levels
        self._top_limit = 1 << self._top_shift
        # level of an entry from the bit length of (tick ^ cursor)
        self._lvl = tuple(max(bl - 1, 0) // bits for bl in range(self._top_shift + 1))
        self._slots: list[list[dict[str, int]]] = [
            [{} for _ in range(wheel_size)] for _ in range(levels)
        ]
        self._bm = [0] * levels  # occupancy bitmap per array level
        self._far: dict[int, dict[str, int]] = {}  # tick >> top_shift -> slot
        self._far_heap: list[int] = []  # keys of _far (lazy: may hold stale ones)
        self._late: dict[int, dict[str, int]] = {}  # when_ms -> bucket, for when < bound
        self._late_heap: list[int] = []  # keys of _late (lazy)
        self._index: dict[str, int] = {}  # key -> when_ms
        self._payloads: dict[str, object] = {}  # key -> payload, only when not None
        # keys handed out by advance() whose _index/_payloads items are not removed
        # yet (see flush()); such a key is not armed
        self._fired: dict[str, int] = {}
        # staging (see prepare()): per array level, the slot being cascaded ahead of
        # time (-1: none), the dict being drained, its iterator, the entries drained
        # so far split by their next-lower digit, keys disarmed while still undrained
        self._stg_slot = [-1] * levels
        self._stg_src: list[dict[str, int] | None] = [None] * levels
        self._stg_iter: list[Iterator[tuple[str, int]] | None] = [None] * levels
        self._stg_parts: list[list[dict[str, int] | None] | None] = [None] * levels
        self._stg_dead: list[set[str] | None] = [None] * levels
        self._now = now_ms
        self._bound = now_ms + 1  # every entry with when < bound is "late"
        self._cur = self._bound // tick_ms  # tick of bound; wheel entries have tick >= cur

    # ------------------------------------------------------------------ queries
    def __len__(self) -> int:
        return len(self._index) - len(self._fired)

    def __contains__(self, key: object) -> bool:
        return key in self._index and key not in self._fired

    def __iter__(self) -> Iterator[str]:
        """Armed keys, in no particular order (do not arm/disarm while iterating)."""
        self.flush()
        return iter(self._index)

    def __repr__(self) -> str:
        return (
            f"<TimingWheel entries={len(self)} now={self._now} tick_ms={self._tick} "
            f"wheel_size={self._mask + 1} levels={self._levels}>"
        )

    def when(self, key: str) -> int | None:
        """The armed instant of ``key`` (``None`` when not armed)."""
        if self._fired and key in self._fired:
            return None
        return self._index.get(key)

    def get(self, key: str) -> tuple[int, object] | None:
        """``(when_ms, payload)`` of ``key``, or ``None`` when not armed."""
        when = self._index.get(key)
        if when is None or (self._fired and key in self._fired):
            return None
        return when, self._payloads.get(key)

    @property
    def now(self) -> int:
        """The ``now_ms`` of the last :meth:`advance` (or of the constructor)."""
        return self._now

    @property
    def bound(self) -> int:
        """High-water mark: one past the largest ``now`` ever advanced to."""
        return self._bound

    @property
    def tick_ms(self) -> int:
        return self._tick

    @property
    def wheel_size(self) -> int:
        return self._mask + 1

    @property
    def levels(self) -> int:
        return self._levels

    @property
    def span_ms(self) -> int:
        """Time covered by the array levels; anything further sits in the far level."""
        return self._top_limit * self._tick

    # ------------------------------------------------------------------ arming
    def arm(self, key: str, when_ms: int, payload: object = None) -> None:
        """Arm ``key`` for ``when_ms``, replacing any entry ``key`` already has. O(1).

        An instant at or before the current time is due at the next :meth:`advance`
        (whose ``now`` is at or after it)."""
        when = when_ms if type(when_ms) is int else _as_int(when_ms)
        index = self._index
        old = index.get(key)
        if old is not None:
            fired = self._fired
            if fired and key in fired:
                del fired[key]  # handed out already: only its index items remain
            else:
                self._unplace(key, old)
            if payload is None and self._payloads:
                self._payloads.pop(key, None)
        index[key] = when
        if payload is not None:
            self._payloads[key] = payload
        if when < self._bound:
            self._place_late(key, when)
        else:
            self._place_wheel(key, when)

    def arm_many(self, items: Iterable[tuple[str, int, object]]) -> int:
        """Arm every ``(key, when_ms, payload)`` (cold start); returns how many."""
        index = self._index
        payloads = self._payloads
        fired = self._fired
        tick = self._tick
        lvl = self._lvl
        shifts = self._shifts
        mask = self._mask
        top_limit = self._top_limit
        slots = self._slots
        bm = self._bm
        unplace = self._unplace
        place_late = self._place_late
        place_far = self._place_far
        count = 0
        for key, when, payload in items:
            if type(when) is not int:
                when = _as_int(when)
            old = index.get(key)
            if old is not None:
                if fired and key in fired:
                    del fired[key]
                else:
                    unplace(key, old)
                if payload is None:
                    payloads.pop(key, None)
            index[key] = when
            if payload is not None:
                payloads[key] = payload
            count += 1
            # bound and cur cannot change while arming; _place_wheel inlined: a cold
            # start arms a million entries here
            if when < self._bound:
                place_late(key, when)
                continue
            t = when if tick == 1 else when // tick
            x = t ^ self._cur
            if 0 <= x < top_limit:
                level = lvl[x.bit_length()]
                s = (t >> shifts[level]) & mask
                slot = slots[level][s]
                if not slot:
                    bm[level] |= 1 << s
                slot[key] = when
            else:
                place_far(key, when, t)
        return count

    def disarm(self, key: str) -> bool:
        """Remove ``key``'s entry; ``True`` if it was armed. O(1)."""
        if self._fired and key in self._fired:
            return False
        when = self._index.pop(key, None)
        if when is None:
            return False
        if self._payloads:
            self._payloads.pop(key, None)
        self._unplace(key, when)
        return True

    def clear(self) -> None:
        """Remove every entry (time and cursor are kept)."""
        for level_slots in self._slots:
            for i in range(len(level_slots)):
                if level_slots[i]:
                    level_slots[i] = {}
        self._bm = [0] * self._levels
        levels = self._levels
        self._stg_slot = [-1] * levels
        self._stg_src = [None] * levels
        self._stg_iter = [None] * levels
        self._stg_parts = [None] * levels
        self._stg_dead = [None] * levels
        self._far.clear()
        self._far_heap.clear()
        self._late.clear()
        self._late_heap.clear()
        self._index.clear()
        self._payloads.clear()
        self._fired = {}

    def flush(self) -> None:
        """Finish removing the entries handed out by :meth:`advance`.

        ``advance`` only reads the key index and the payloads while it hands entries
        out (deleting a million-entry dict's items costs a cache miss each: ~5 ms for
        a burst of 10,000) and leaves the deletions to this method. A key re-armed
        in the meantime (a cron job re-armed from ``on_due``) needs no deletion at all.
        The driver calls it right after ``on_due``; ``advance`` calls it first thing.
        Nothing observable depends on when it runs."""
        fired = self._fired
        if fired:
            self._fired = {}
            index = self._index
            for key in fired:
                del index[key]
            payloads = self._payloads
            if payloads:
                pop = payloads.pop
                for key in fired:
                    pop(key, None)

    # ------------------------------------------------------------------ placement
    def _place_late(self, key: str, when: int) -> None:
        bucket = self._late.get(when)
        if bucket is None:
            self._late[when] = bucket = {}
            heappush(self._late_heap, when)
        bucket[key] = when

    def _place_far(self, key: str, when: int, t: int) -> None:
        p = t >> self._top_shift
        slot = self._far.get(p)
        if slot is None:
            self._far[p] = slot = {}
            heappush(self._far_heap, p)
        slot[key] = when

    def _place_wheel(self, key: str, when: int) -> None:
        """Place an entry with ``when >= bound`` (its tick >= cur)."""
        t = when if self._tick == 1 else when // self._tick
        x = t ^ self._cur
        if 0 <= x < self._top_limit:
            level = self._lvl[x.bit_length()]
            s = (t >> self._shifts[level]) & self._mask
            slot = self._slots[level][s]
            if not slot:
                self._bm[level] |= 1 << s
            slot[key] = when
        else:
            self._place_far(key, when, t)

    def _unplace(self, key: str, when: int) -> None:
        """Remove ``key`` from the container its ``when`` maps to (index untouched)."""
        if when < self._bound:
            late = self._late
            bucket = late[when]
            del bucket[key]
            if not bucket:
                del late[when]
                heap = self._late_heap
                if len(heap) > 64 and len(heap) > 2 * len(late):
                    heap[:] = late
                    heapify(heap)
            return
        t = when if self._tick == 1 else when // self._tick
        x = t ^ self._cur
        if 0 <= x < self._top_limit:
            level = self._lvl[x.bit_length()]
            s = (t >> self._shifts[level]) & self._mask
            slot = self._slots[level][s]
            try:
                del slot[key]
            except KeyError:  # not in the slot's dict: the slot is being staged
                self._unplace_staged(key, t, level, s)
                return
            if not slot and self._stg_slot[level] != s:  # a staged slot keeps its bit
                self._bm[level] &= ~(1 << s)
                slot.clear()  # release a table that grew large
        else:
            p = t >> self._top_shift
            slot = self._far[p]
            del slot[key]
            if not slot:
                del self._far[p]
                heap = self._far_heap
                if len(heap) > 64 and len(heap) > 2 * len(self._far):
                    heap[:] = self._far
                    heapify(heap)

    # ------------------------------------------------------------------ time
    def next_deadline(self) -> int | None:
        """Earliest instant at which :meth:`advance` could return something.

        Exact for late entries and (with ``tick_ms == 1``) for entries at the lowest
        level; otherwise a lower bound (the start of the next slot to cascade), never
        later than the earliest armed instant; ``None`` when nothing is armed. After
        ``advance(n)`` it is always ``> n``, so a driver that sleeps until then always
        makes progress. O(levels)."""
        if len(self._index) == len(self._fired):
            return None  # (a staged slot keeps its bit even when emptied)
        late_heap = self._late_heap
        if late_heap:
            late = self._late
            while late_heap and late_heap[0] not in late:
                heappop(late_heap)
            if late_heap:
                return late_heap[0]  # every late entry precedes every wheel entry
        ev = self._next_event()
        if ev is None:
            return None
        e, level = ev[0], ev[1]
        if level == 0 and e == self._cur:
            if self._tick == 1:
                return self._bound
            slot = self._slots[0][ev[2]]
            if len(slot) <= 32:
                return min(slot.values())
            return self._bound
        return e * self._tick

    def _next_event(self) -> tuple[int, int, int] | None:
        """``(tick, level, slot)`` of the next emission (level 0) or cascade (above);
        level ``levels`` means the far level (``slot`` is then its key)."""
        cur = self._cur
        mask = self._mask
        bm = self._bm
        m = bm[0]
        if m:
            d = cur & mask
            m >>= d  # no level-0 entry lies before cur in this rotation
            s = d + (m & -m).bit_length() - 1
            return cur - d + s, 0, s
        shifts = self._shifts
        bits = self._bits
        for level in range(1, self._levels):
            m = bm[level]
            if m:
                sh = shifts[level]
                d = (cur >> sh) & mask
                m >>= d + 1
                if m:
                    s = d + (m & -m).bit_length()
                    up = sh + bits
                    return ((cur >> up) << up) | (s << sh), level, s
        far_heap = self._far_heap
        if far_heap:
            far = self._far
            while far_heap and far_heap[0] not in far:
                heappop(far_heap)
            if far_heap:
                p = far_heap[0]
                return p << self._top_shift, self._levels, p
        return None

    def _move_to(self, x: int) -> None:
        """Move the cursor forward to tick ``x`` and cascade the slots whose range it
        enters. Callers guarantee that no non-empty slot starts strictly between the
        old cursor and ``x``."""
        old = self._cur
        self._cur = x
        top_shift = self._top_shift
        place = self._place_wheel
        if (x >> top_shift) != (old >> top_shift):
            top = self._levels - 1
            src = self._far.pop(x >> top_shift, None)
            if src:
                for key, when in src.items():
                    place(key, when)
        else:
            top = self._lvl[(old ^ x).bit_length()]
        if top < 1:
            return
        bm = self._bm
        mask = self._mask
        shifts = self._shifts
        for level in range(top, 0, -1):
            s = (x >> shifts[level]) & mask
            if (bm[level] >> s) & 1:
                if self._stg_slot[level] == s:
                    self._finish_stage(level)
                    continue
                level_slots = self._slots[level]
                src = level_slots[s]
                level_slots[s] = {}
                bm[level] &= ~(1 << s)
                self._cascade(src)

    def _cascade(self, src: dict[str, int]) -> None:
        """Re-place every entry of ``src`` (in its order, which keeps arm order).

        ``_place_wheel`` inlined, with the destination slot kept across entries of one
        instant: a cascade moves thousands of entries due together."""
        tick = self._tick
        cur = self._cur
        lvl = self._lvl
        shifts = self._shifts
        mask = self._mask
        slots = self._slots
        bm = self._bm
        top_limit = self._top_limit
        last_when = None
        dest: dict[str, int] = {}
        for key, when in src.items():
            if when == last_when:  # bursts share instants
                dest[key] = when
                continue
            t = when if tick == 1 else when // tick
            x = t ^ cur
            if 0 <= x < top_limit:
                level = lvl[x.bit_length()]
                s = (t >> shifts[level]) & mask
                dest = slots[level][s]
                if not dest:
                    bm[level] |= 1 << s
                dest[key] = when
                last_when = when
            else:  # cannot happen for a cascade, but stay correct
                self._place_far(key, when, t)
                last_when = None

    # ------------------------------------------------------------------ staging
    def prepare(self, budget: int = 4096, min_slot: int = 1024) -> bool:
        """Do up to ``budget`` entries' worth of upcoming cascades ahead of time.

        Entering a slot of level ``l >= 1`` re-places every entry it holds; with
        every-minute cron jobs a level-2 slot (65 s at 256 x 1 ms) can hold all of
        them (~0.7 s for 1,000,000 entries in one go). ``prepare`` splits the next
        slot of each level (if it holds at least ``min_slot`` entries) by the next
        lower digit, a chunk at a time, while the cursor is still before it; when the
        cursor enters it, those parts become lower-level slots by reference. Entries
        armed into a slot being staged meanwhile are staged after the others, so arm
        order is kept. Returns ``True`` while work remains. A staged slot holds its
        entries twice (~40 B each) until its source dict is drained.

        :class:`WheelDriver` calls it in small steps when it has nothing else to do;
        results never depend on whether, when or how much it is called."""
        more = False
        cur = self._cur
        mask = self._mask
        shifts = self._shifts
        for level in range(1, self._levels):
            if budget <= 0:
                return True
            s = self._stg_slot[level]
            if s < 0:
                m = self._bm[level]
                if not m:
                    continue
                d = (cur >> shifts[level]) & mask
                m >>= d + 1
                if not m:
                    continue
                s = d + (m & -m).bit_length()
                level_slots = self._slots[level]
                src = level_slots[s]
                if len(src) < min_slot:
                    continue
                level_slots[s] = {}  # the tail: entries armed into the slot from now on
                self._stg_slot[level] = s
                self._stg_src[level] = src
                self._stg_iter[level] = iter(src.items())
                self._stg_parts[level] = [None] * (mask + 1)
                self._stg_dead[level] = set()
            budget = self._stage_some(level, s, budget)
            if self._stg_iter[level] is not None or self._slots[level][s]:
                more = True
        return more

    def _stage_some(self, level: int, s: int, budget: int) -> int:
        """Drain up to ``budget`` entries of the staged slot into its parts."""
        parts = self._stg_parts[level]
        dead = self._stg_dead[level]
        assert parts is not None and dead is not None
        tick = self._tick
        shift = self._shifts[level - 1]
        mask = self._mask
        level_slots = self._slots[level]
        while budget > 0:
            it = self._stg_iter[level]
            if it is None:
                tail = level_slots[s]
                if not tail:
                    break
                # drain the tail next; later arms go to a new tail
                level_slots[s] = {}
                self._stg_src[level] = tail
                self._stg_iter[level] = it = iter(tail.items())
            n = 0
            for key, when in islice(it, budget):
                n += 1
                if dead and key in dead:
                    dead.discard(key)  # disarmed before it was drained
                    continue
                t = when if tick == 1 else when // tick
                d = (t >> shift) & mask
                part = parts[d]
                if part is None:
                    parts[d] = part = {}
                part[key] = when
            if n < budget:  # source exhausted
                self._stg_iter[level] = None
                self._stg_src[level] = None
                dead.clear()
            budget -= n
        return budget

    def _unplace_staged(self, key: str, t: int, level: int, s: int) -> None:
        if self._stg_slot[level] != s:
            raise KeyError(key)  # a broken invariant, not a staged entry
        d = (t >> self._shifts[level - 1]) & self._mask
        parts = self._stg_parts[level]
        assert parts is not None
        part = parts[d]
        if part is not None and key in part:
            del part[key]
        else:  # still in the source dict, which must not change while iterated
            dead = self._stg_dead[level]
            assert dead is not None
            dead.add(key)

    def _finish_stage(self, level: int) -> None:
        """The cursor entered the staged slot of ``level``: install its parts one
        level lower, then re-place what was not drained yet, then the tail."""
        s = self._stg_slot[level]
        parts = self._stg_parts[level]
        it = self._stg_iter[level]
        dead = self._stg_dead[level]
        self._stg_slot[level] = -1
        self._stg_src[level] = None
        self._stg_iter[level] = None
        self._stg_parts[level] = None
        self._stg_dead[level] = None
        assert parts is not None
        bm = self._bm
        level_slots = self._slots[level]
        tail = level_slots[s]
        level_slots[s] = {}
        bm[level] &= ~(1 << s)
        lower = level - 1
        lower_slots = self._slots[lower]
        for d, part in enumerate(parts):
            if part:
                if d == 0 and lower > 0:
                    # the cursor's own digit: must go further down at once
                    self._cascade(part)
                elif lower_slots[d]:  # cannot happen: a new block starts empty
                    lower_slots[d].update(part)
                else:
                    lower_slots[d] = part
                    bm[lower] |= 1 << d
        if it is not None:
            place = self._place_wheel
            for key, when in it:
                if dead and key in dead:
                    continue
                place(key, when)
        if tail:
            self._cascade(tail)

    def advance(self, now_ms: int) -> Due:
        """Move time to ``now_ms``; remove and return every entry with ``when <= now_ms``
        as ``(when_ms, key, payload)``, ordered by instant then arm order.

        ``now_ms`` may be earlier than a previous call (wall clock stepped back):
        nothing is lost, entries wait until ``now_ms`` reaches them again."""
        n = now_ms if type(now_ms) is int else _as_int(now_ms)
        self._now = n
        out: Due = []
        if self._fired:
            self.flush()
        payloads = self._payloads
        late_heap = self._late_heap
        if late_heap and late_heap[0] <= n:
            late = self._late
            while late_heap and late_heap[0] <= n:
                w = heappop(late_heap)
                bucket = late.pop(w, None)
                if bucket is None:
                    continue  # stale heap item
                if payloads:
                    get = payloads.get
                    out.extend([(w, k, get(k)) for k in bucket])
                else:
                    out.extend([(w, k, None) for k in bucket])
                if self._fired:
                    self._fired.update(bucket)
                else:
                    self._fired = bucket
        if n < self._bound:
            return out  # time went backwards: the wheel holds nothing <= n
        tick = self._tick
        nt = n // tick
        mask = self._mask
        bm = self._bm
        slots0 = self._slots[0]
        while True:
            m = bm[0]
            if m:
                cur = self._cur
                d = cur & mask
                s = d + ((m >> d) & -(m >> d)).bit_length() - 1
                e = cur - d + s
                if e > nt:
                    break
                slot = slots0[s]
                if tick == 1 or e < nt or n >= e * tick + tick - 1:
                    slots0[s] = {}
                    bm[0] = m & ~(1 << s)
                    start = len(out)
                    if payloads:
                        get = payloads.get
                        out.extend([(w, k, get(k)) for k, w in slot.items()])
                    else:
                        out.extend([(w, k, None) for k, w in slot.items()])
                    if self._fired:
                        self._fired.update(slot)
                    else:
                        self._fired = slot
                    if tick != 1 and len(slot) > 1:
                        out[start:] = sorted(out[start:], key=_WHEN)
                    if e < nt:
                        self._move_to(e + 1)
                        continue
                    break
                # the tick of n, partly due (tick_ms > 1 only)
                ready = sorted([(w, k) for k, w in slot.items() if w <= n], key=_WHEN)
                fired = self._fired
                for w, k in ready:
                    del slot[k]
                    fired[k] = w
                    out.append((w, k, payloads.get(k) if payloads else None))
                if not slot:
                    bm[0] = m & ~(1 << s)
                    slot.clear()
                break
            ev = self._next_event()
            if ev is None or ev[0] > nt:
                break
            self._move_to(ev[0])  # cascades the slot starting there
        self._bound = n + 1
        new_cur = self._bound // tick
        if new_cur != self._cur:
            self._move_to(new_cur)
        return out


# ---------------------------------------------------------------------- driver


class LatenessStats:
    """Dispatch lateness (clock at ``on_due`` minus ``when_ms``) of every fire, as
    cumulative counts per bucket bound (ms) plus count, min, max and sum.

    Batches arrive sorted by instant, so each bucket count is one bisection:
    recording a batch costs O(buckets x log batch) plus one C-level sum for the mean."""

    BOUNDS: tuple[int, ...] = (0, 1, 2, 3, 5, 7, 10, 15, 20, 30, 50, 75, 100, 200, 500,
                               1000, 2000, 5000, 10000, 60000)

    __slots__ = ("fires", "batches", "sum_ms", "min_ms", "max_ms", "le")

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.fires = 0
        self.batches = 0
        self.sum_ms = 0
        self.min_ms: int | None = None
        self.max_ms: int | None = None
        self.le = [0] * len(self.BOUNDS)  # fires with lateness <= BOUNDS[i]

    def record(self, now: int, due: Due) -> None:
        n = len(due)
        if not n:
            return
        self.fires += n
        self.batches += 1
        worst = now - due[0][0]
        best = now - due[-1][0]
        if self.max_ms is None or worst > self.max_ms:
            self.max_ms = worst
        if self.min_ms is None or best < self.min_ms:
            self.min_ms = best
        if worst == best:
            self.sum_ms += worst * n
            for i, b in enumerate(self.BOUNDS):
                if worst <= b:
                    self.le[i] += n
        else:
            self.sum_ms += now * n - sum(map(_WHEN, due))
            le = self.le
            for i, b in enumerate(self.BOUNDS):
                # lateness <= b  <=>  when >= now - b
                le[i] += n - bisect_left(due, now - b, key=_WHEN)

    @property
    def mean_ms(self) -> float | None:
        return self.sum_ms / self.fires if self.fires else None

    def quantile(self, q: float) -> float | None:
        """Upper bound (a bucket bound, or ``max_ms``) of the ``q`` quantile."""
        if not self.fires:
            return None
        target = q * self.fires
        for b, c in zip(self.BOUNDS, self.le):
            if c >= target:
                return float(min(b, self.max_ms)) if self.max_ms is not None else float(b)
        return float(self.max_ms)  # type: ignore[arg-type]

    def as_dict(self) -> dict[str, object]:
        return {
            "fires": self.fires,
            "batches": self.batches,
            "min_ms": self.min_ms,
            "mean_ms": self.mean_ms,
            "p50_ms": self.quantile(0.5),
            "p99_ms": self.quantile(0.99),
            "max_ms": self.max_ms,
        }


class WheelDriver:
    """Runs a :class:`TimingWheel` on the running asyncio loop.

    One timer handle (``loop.call_later``) at a time, never a task per fire: it wakes
    at the wheel's next deadline, measured on ``clock`` (wall-clock ms), sleeping at
    most ``max_sleep_ms`` so that wall-clock jumps are noticed. The loop's timers fire
    up to a millisecond late, so the timer is set ``spin_ms`` early and the last stretch
    is polled on the loop's next turns (``call_soon``; other callbacks still run). Then it calls
    ``advance(clock())`` and hands the whole due batch to ``on_due`` in one
    synchronous call on the loop.

    ``on_due`` may arm and disarm (through the driver or the wheel), including
    re-arming a key it was just handed: entries are removed from the wheel before
    ``on_due`` sees them, and the wake-up is recomputed after it returns, so nothing is
    missed or fired twice; an entry armed inside ``on_due`` for a passed instant fires
    on the next wake (scheduled with ``call_soon``). An exception from ``on_due`` is
    reported to the loop's exception handler and the driver keeps going.

    Outside ``on_due``, arm through the driver (not the wheel) so that an entry
    earlier than the current wake-up moves the wake-up; arming directly on the wheel
    is fine before :meth:`start` (cold start with ``arm_many``).

    Between wake-ups the driver does the wheel's upcoming cascades ahead of time
    (:meth:`TimingWheel.prepare`) in steps of ``prepare_budget`` entries (about a
    millisecond each), one ``call_soon`` step at a time so that other callbacks run in
    between, and only while the next wake-up is more than ``prepare_margin_ms`` away;
    ``prepare_budget=0`` turns this off. After each batch it also schedules the
    wheel's deferred index clean-up (:meth:`TimingWheel.flush`).
    """

    def __init__(
        self,
        wheel: TimingWheel,
        on_due: Callable[[Due], None],
        clock: Callable[[], int] = _wall_now_ms,
        max_sleep_ms: int = 1000,
        spin_ms: float = 1.0,
        prepare_budget: int = 2048,
        prepare_margin_ms: int = 3,
    ) -> None:
        if max_sleep_ms < 1:
            raise ValueError("max_sleep_ms must be >= 1")
        self.prepare_budget = prepare_budget
        self.prepare_margin_ms = prepare_margin_ms
        self._preparing = False
        self.wheel = wheel
        self.stats = LatenessStats()
        self._on_due = on_due
        self._clock = clock
        # Wake-ups are planned on a sub-millisecond reading of the same clock: the whole
        # ms of ``clock`` is up to 1 ms behind, which would make every wake-up that late.
        self._fine_clock: Callable[[], float] = _fine_wall_now_ms if clock is _wall_now_ms else clock
        self._max_sleep_ms = max_sleep_ms
        self._spin_ms = spin_ms
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.Handle | None = None
        self._wake_ms: float = math.inf  # wall ms of the pending wake (-inf: immediate)
        self._running = False
        self._dispatching = False
        self.wakeups = 0

    @property
    def running(self) -> bool:
        return self._running

    def start(self) -> None:
        """Start on the running loop (call from a coroutine or a loop callback)."""
        if self._running:
            return
        self._loop = asyncio.get_running_loop()
        self._running = True
        self._reschedule()
        self._kick_prepare()

    def stop(self) -> None:
        """Stop firing; entries stay armed in the wheel."""
        self._running = False
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._wake_ms = math.inf

    # -------------------------------------------------------------- delegation
    def arm(self, key: str, when_ms: int, payload: object = None) -> None:
        self.wheel.arm(key, when_ms, payload)
        if when_ms < self._wake_ms and self._running and not self._dispatching:
            self._reschedule()

    def arm_many(self, items: Iterable[tuple[str, int, object]]) -> int:
        count = self.wheel.arm_many(items)
        if count and self._running and not self._dispatching:
            self._reschedule()
        return count

    def disarm(self, key: str) -> bool:
        # waking up for nothing is harmless; no reschedule
        return self.wheel.disarm(key)

    def when(self, key: str) -> int | None:
        return self.wheel.when(key)

    # -------------------------------------------------------------- scheduling
    def _reschedule(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        loop = self._loop
        assert loop is not None
        deadline = self.wheel.next_deadline()
        now = self._fine_clock()
        if deadline is None:
            delay = self._max_sleep_ms
        else:
            delay = deadline - now
            if delay > self._max_sleep_ms:
                delay = self._max_sleep_ms
        if delay <= 0:
            self._wake_ms = -math.inf  # nothing can be earlier than "now"
            self._handle = loop.call_soon(self._wake)
        elif delay <= self._spin_ms:
            # The loop's timers fire up to 1 ms late (epoll rounds its timeout up to whole
            # ms): cover the last stretch by polling on the loop's next turns instead.
            self._wake_ms = now + delay
            self._handle = loop.call_soon(self._wake)
        else:
            self._wake_ms = now + delay
            self._handle = loop.call_later((delay - self._spin_ms) / 1000.0, self._wake)

    def _wake(self) -> None:
        self._handle = None
        self._wake_ms = math.inf
        if not self._running:
            return
        self.wakeups += 1
        now = self._clock()
        due = self.wheel.advance(now)
        if due:
            self.stats.record(self._clock(), due)  # the clock as on_due is called
            self._dispatching = True
            try:
                self._on_due(due)
            except Exception as exc:  # the driver must survive a faulty callback
                assert self._loop is not None
                self._loop.call_exception_handler(
                    {"message": "WheelDriver on_due callback failed", "exception": exc}
                )
            finally:
                self._dispatching = False
        if self._running and self._handle is None:
            self._reschedule()
        if due:
            # index clean-up after whatever on_due scheduled to run next
            assert self._loop is not None
            self._loop.call_soon(self.wheel.flush)
        self._kick_prepare()

    def _kick_prepare(self) -> None:
        if self.prepare_budget > 0 and not self._preparing and self._running:
            self._preparing = True
            assert self._loop is not None
            self._loop.call_soon(self._prepare_step)

    def _prepare_step(self) -> None:
        self._preparing = False
        if not self._running:
            return
        if self._wake_ms - self._clock() <= self.prepare_margin_ms:
            return  # the next wake-up is near; it starts the next round
        if self.wheel.prepare(self.prepare_budget):
            self._kick_prepare()
