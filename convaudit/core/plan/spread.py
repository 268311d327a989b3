"""A value for each of N devices, kept as runs of equal values.

A plan over 65,536 devices has few kinds of device: under `data` or `fsdp` every device but a handful holds
the same share, and a layer of C channels split by columns leaves at most about 2·C runs whatever N is. The
planner builds every per-device record as a `Spread`, so its work grows with the network, not with N.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")
U = TypeVar("U")


@dataclass(frozen=True)
class Spread(Generic[T]):
    """Devices 0 … N−1, each with a value: run i covers devices ends[i−1] … ends[i] − 1 and holds values[i].

    Neighbouring runs always differ, so two spreads of the same values compare equal."""

    ends: tuple[int, ...]
    values: tuple[T, ...]

    # -------------------------------------------------------------- building

    @classmethod
    def uniform(cls, devices: int, value: T) -> Spread[T]:
        return cls((devices,), (value,))

    @classmethod
    def of(cls, values: Sequence[T]) -> Spread[T]:
        """One value per device, given in full (small N, or tests)."""
        return cls.from_runs([(i + 1, value) for i, value in enumerate(values)])

    @classmethod
    def sparse(cls, devices: int, default: T, special: Mapping[int, T]) -> Spread[T]:
        """Every device holds `default` except those in `special` (each 0 ≤ d < N)."""
        runs: list[tuple[int, T]] = []
        at = 0
        for device in sorted(special):
            if device > at:
                runs.append((device, default))
            runs.append((device + 1, special[device]))
            at = device + 1
        if at < devices:
            runs.append((devices, default))
        return cls.from_runs(runs)

    @classmethod
    def from_runs(cls, runs: list[tuple[int, T]]) -> Spread[T]:
        ends: list[int] = []
        values: list[T] = []
        for end, value in runs:
            if values and values[-1] == value:
                ends[-1] = end
            else:
                ends.append(end)
                values.append(value)
        return cls(tuple(ends), tuple(values))

    # -------------------------------------------------------------- reading

    @property
    def devices(self) -> int:
        return self.ends[-1]

    def __len__(self) -> int:
        return self.ends[-1]

    def __getitem__(self, device: int) -> T:
        if not 0 <= device < self.ends[-1]:
            raise IndexError(f"device {device} of {self.ends[-1]}")
        return self.values[bisect_right(self.ends, device)]

    def __iter__(self) -> Iterator[T]:
        """Every device's value in turn: N items, for small N (rendering groups runs instead)."""
        for first, stop, value in self.runs():
            for _ in range(stop - first):
                yield value

    def runs(self) -> Iterator[tuple[int, int, T]]:
        """(first device, one past the last, value) for each run."""
        first = 0
        for end, value in zip(self.ends, self.values, strict=True):
            yield first, end, value
            first = end

    def map(self, function: Callable[[T], U]) -> Spread[U]:
        """function(value) for each run; called once per distinct value (runs often alternate between two)."""
        results: dict[Any, U] = {}
        runs = []
        for end, value in zip(self.ends, self.values, strict=True):
            if value not in results:
                results[value] = function(value)
            runs.append((end, results[value]))
        return Spread.from_runs(runs)

    def total(self, key: Callable[[T], Any] = lambda value: value) -> Any:
        """The sum over every device of key(value): each run counted once per device it covers."""
        result: Any = 0
        for first, stop, value in self.runs():
            result = result + (stop - first) * key(value)
        return result

    def largest(self, key: Callable[[T], Any] = lambda value: value) -> Any:
        return max(key(value) for value in self.values)


def combine(function: Callable[..., U], *spreads: Spread[Any]) -> Spread[U]:
    """function(a[d], b[d], …) for every device, one call per run of the merged boundaries."""
    if len(spreads) == 1:
        return spreads[0].map(function)
    ends = sorted(set().union(*(spread.ends for spread in spreads)))
    positions = [0] * len(spreads)
    runs: list[tuple[int, U]] = []
    results: dict[tuple[Any, ...], U] = {}  # one call per distinct combination of values
    for end in ends:
        values = tuple(spread.values[i] for spread, i in zip(spreads, positions, strict=True))
        if values not in results:
            results[values] = function(*values)
        runs.append((end, results[values]))
        positions = [i + (spread.ends[i] == end) for spread, i in zip(spreads, positions, strict=True)]
    return Spread.from_runs(runs)


def run_boundaries(spreads: Sequence[Spread[Any]]) -> list[int]:
    """Where any of these spreads changes value: the ends of the device classes they all agree on."""
    return sorted(set().union(*(spread.ends for spread in spreads)))
