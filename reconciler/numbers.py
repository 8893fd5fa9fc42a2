"""Phone numbers as intervals: number blocks are never expanded into single numbers.

A block `{prefix: "+49301234567", from: "0", to: "99"}` stands for the E.164
numbers prefix+0 … prefix+99, written without the '-' (+493012345670 …
+4930123456799). Two blocks of different prefixes can share numbers
(+4930123 100–199 and +49301231 0–99 both hold +4930123199), so blocks are
compared as the numbers they stand for: for each count of digits, a range of
integers of one length. A block gives at most six such intervals whatever its
size, and a single number (a main number, a `did`) gives one.

`IntervalIndex` answers "which holder already has any of these numbers" with
a sorted list and bisect: building it is O(n log n), each question O(log n).
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from typing import Any, Iterable, NamedTuple


class Interval(NamedTuple):
    length: int  # digits of the full number, without '+'
    low: int
    high: int


def block_intervals(prefix: str, first: str | int, last: str | int) -> list[Interval]:
    """The numbers of a block, as intervals of equal-length numbers."""
    head = prefix.lstrip("+")
    base, low, high = int(head), int(first), int(last)
    intervals = []
    for digits in range(1, len(str(high)) + 1):
        lo = max(low, 0 if digits == 1 else 10 ** (digits - 1))
        hi = min(high, 10 ** digits - 1)
        if lo <= hi:
            scale = 10 ** digits
            intervals.append(Interval(len(head) + digits, base * scale + lo, base * scale + hi))
    return intervals


def number_interval(number: str) -> Interval:
    """A single number written as a block number, 'prefix-extension'."""
    digits = number.lstrip("+").replace("-", "")
    value = int(digits)
    return Interval(len(digits), value, value)


def e164(number: str) -> str:
    """'+49301234567-0' → '+493012345670'."""
    return number.replace("-", "")


@dataclass(frozen=True, slots=True)
class Held:
    """One holder's interval: who holds it is anything the caller wants to name."""

    interval: Interval
    holder: Any


class IntervalIndex:
    """Intervals of many holders; finds the holder of any interval that overlaps a query."""

    def __init__(self, items: Iterable[Held]):
        by_length: dict[int, list[Held]] = {}
        for item in items:
            by_length.setdefault(item.interval.length, []).append(item)
        self._lows: dict[int, list[int]] = {}
        self._reach: dict[int, list[Held]] = {}  # the item reaching furthest up to position i
        for length, held in by_length.items():
            held.sort(key=lambda h: h.interval.low)
            self._lows[length] = [h.interval.low for h in held]
            reach, best = [], None
            for item in held:
                if best is None or item.interval.high > best.interval.high:
                    best = item
                reach.append(best)
            self._reach[length] = reach

    def overlapping(self, interval: Interval) -> Held | None:
        """A held interval sharing a number with `interval`, or None."""
        lows = self._lows.get(interval.length)
        if not lows:
            return None
        position = bisect_right(lows, interval.high) - 1  # the last one starting inside
        if position < 0:
            return None
        candidate = self._reach[interval.length][position]
        return candidate if candidate.interval.high >= interval.low else None


def first_overlaps(items: list[Held]) -> list[tuple[Held, Held]]:
    """Pairs (later, earlier) of overlapping intervals, at most one per holder.

    A sweep over the sorted intervals, linear after sorting whatever the block
    sizes: an interval overlaps an earlier one exactly when it starts before the
    furthest end seen so far (of its length).
    """
    found: list[tuple[Held, Held]] = []
    reported: set = set()
    furthest: Held | None = None
    for item in sorted(items, key=lambda h: (h.interval.length, h.interval.low)):
        if furthest is not None and furthest.interval.length == item.interval.length:
            if furthest.interval.high >= item.interval.low:
                if item.holder not in reported:
                    reported.add(item.holder)
                    found.append((item, furthest))
                if item.interval.high <= furthest.interval.high:
                    continue
        furthest = item
    return found
