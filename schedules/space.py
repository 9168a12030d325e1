"""The search-space language: knobs, their product space, and configs as points in it.

A template declares knobs on a `ConfigSpace`; a `Config` is one point of the product of
the knobs' candidate lists, identified by a stable mixed-radix integer index (first knob
least significant) and carrying its name -> value dict.
"""
from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np


class Knob:
    """One tunable decision with a finite, ordered list of candidate values."""

    def __init__(self, name: str, candidates: Sequence[Any]):
        if not candidates:
            raise ValueError(f"knob {name!r} has no candidates")
        self.name = name
        self.candidates = tuple(candidates)
        self._position = {value: i for i, value in enumerate(self.candidates)}

    def __len__(self) -> int:
        return len(self.candidates)

    def index(self, value: Any) -> int:
        """Position of `value` among the candidates (ValueError when it is not one)."""
        try:
            return self._position[self.decode(self.encode(value))]
        except (KeyError, TypeError):
            raise ValueError(f"{value!r} is not a candidate of knob {self.name!r}") from None

    def encode(self, value: Any) -> Any:
        """JSON form of a value (tuples become lists)."""
        return list(value) if isinstance(value, tuple) else value

    def decode(self, data: Any) -> Any:
        """Value from its JSON form."""
        return tuple(data) if isinstance(data, list) else data

    def features(self, value: Any) -> list[float]:
        """The value as numbers for a cost model: one-hot over the candidates by default."""
        row = [0.0] * len(self)
        row[self.index(value)] = 1.0
        return row

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {len(self)} candidates)"


class SplitKnob(Knob):
    """Split a loop of `extent` into `parts` nested loops; a value lists the factors, outer first.

    Policies: `factors` (every ordered factorization whose product is exactly the extent),
    `power2` (inner factors are powers of two, the outermost covers the rest with a guard
    or padding, so any extent works, primes included). `max_factor` and `min_factor`
    bound the inner factors: one number for all of them, or one per inner level.
    """

    def __init__(
        self,
        name: str,
        extent: int,
        parts: int,
        policy: str = "power2",
        max_factor: int | Sequence[int] | None = None,
        min_factor: int | Sequence[int] = 1,
    ):
        if extent < 1 or parts < 1:
            raise ValueError(f"split {name!r}: extent and parts must be positive")
        self.extent, self.parts, self.policy = extent, parts, policy
        highs = _per_level(max_factor or extent, parts - 1)
        lows = _per_level(min_factor, parts - 1)
        if policy == "factors":
            levels = [[d for d in _divisors(extent) if lo <= d <= hi] for lo, hi in zip(lows, highs)]
        elif policy == "power2":
            # Factors past the extent only add padding, except where a lower bound asks for them.
            top = max(_next_pow2(extent), math.prod(lows))
            levels = [[2**e for e in range(top.bit_length()) if lo <= 2**e <= hi] for lo, hi in zip(lows, highs)]
        else:
            raise ValueError(f"split {name!r}: unknown policy {policy!r} (factors, power2)")
        candidates = []
        for inner in itertools.product(*levels):
            covered = math.prod(inner)
            if policy == "factors" and extent % covered:
                continue
            if policy == "power2" and covered > top:
                continue
            candidates.append((-(-extent // covered), *inner))
        super().__init__(name, candidates)

    def features(self, value: Any) -> list[float]:
        return [math.log2(factor) for factor in value]


class CategoricalKnob(Knob):
    """A choice among named alternatives (a loop order, a layout, on/off)."""


class UnrollKnob(Knob):
    """How the innermost loops unroll: a value is (auto_unroll_max_step, explicit).

    `auto_unroll_max_step` becomes the `pragma_auto_unroll_max_step` annotation (0: none);
    `explicit` unrolls the register-tile loops with `sch.unroll`.
    """

    def __init__(self, name: str, max_steps: Sequence[int] = (0, 16, 64, 512), explicit: Sequence[bool] = (False, True)):
        super().__init__(name, [(step, flag) for flag in explicit for step in max_steps])

    def features(self, value: Any) -> list[float]:
        step, explicit = value
        return [math.log2(1 + step), float(explicit)]


class VectorizeKnob(Knob):
    """Length of the vectorized innermost loop, in elements (1: scalar)."""

    def __init__(self, name: str, lengths: Sequence[int]):
        if any(n < 1 for n in lengths):
            raise ValueError(f"vectorize {name!r}: lengths must be positive")
        super().__init__(name, sorted(set(lengths)))

    def features(self, value: Any) -> list[float]:
        return [math.log2(value)]


@dataclass(frozen=True)
class Config(Mapping):
    """A point of a ConfigSpace: its index and knob name -> value. Small and picklable."""

    index: int
    values: Mapping[str, Any]

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.values)

    def __len__(self) -> int:
        return len(self.values)

    def __hash__(self) -> int:
        return hash(self.index)

    def __str__(self) -> str:
        return ", ".join(f"{k}={_short(v)}" for k, v in self.values.items())


class ConfigSpace:
    """The product space of a template's knobs, with validity constraints."""

    def __init__(self) -> None:
        self.knobs: dict[str, Knob] = {}
        self._constraints: list[tuple[str, Callable[[Mapping[str, Any]], bool]]] = []

    # -- declaring ---------------------------------------------------------------------
    def add(self, knob: Knob) -> Knob:
        if knob.name in self.knobs:
            raise ValueError(f"knob {knob.name!r} defined twice")
        self.knobs[knob.name] = knob
        for cached in ("radices", "_strides", "_feature_tables"):  # the index tables change with the knobs
            self.__dict__.pop(cached, None)
        return knob

    def define_split(
        self,
        name: str,
        extent: int,
        parts: int,
        policy: str = "power2",
        max_factor: int | Sequence[int] | None = None,
        min_factor: int | Sequence[int] = 1,
    ) -> Knob:
        return self.add(SplitKnob(name, extent, parts, policy, max_factor, min_factor))

    def define_knob(self, name: str, choices: Sequence[Any]) -> Knob:
        return self.add(CategoricalKnob(name, choices))

    def define_unroll(self, name: str, max_steps: Sequence[int] = (0, 16, 64, 512), explicit: Sequence[bool] = (False, True)) -> Knob:
        return self.add(UnrollKnob(name, max_steps, explicit))

    def define_vectorize(self, name: str, lengths: Sequence[int]) -> Knob:
        return self.add(VectorizeKnob(name, lengths))

    def add_constraint(self, description: str, predicate: Callable[[Mapping[str, Any]], bool]) -> None:
        """Only points for which `predicate(values)` holds are valid."""
        self._constraints.append((description, predicate))

    # -- the product space ---------------------------------------------------------------
    def __len__(self) -> int:
        """Size of the product space, invalid points included."""
        return math.prod(len(k) for k in self.knobs.values())

    def get(self, index: int) -> Config:
        if not 0 <= index < len(self):
            raise IndexError(f"config index {index} outside the space of {len(self)}")
        values, rest = {}, index
        for knob in self.knobs.values():
            rest, position = divmod(rest, len(knob))
            values[knob.name] = knob.candidates[position]
        return Config(index, values)

    def index_of(self, values: Mapping[str, Any]) -> int:
        """Index of the point with these knob values (ValueError if not in this space)."""
        if set(values) != set(self.knobs):
            raise ValueError(f"knobs {sorted(values)} do not match the space's {sorted(self.knobs)}")
        index, stride = 0, 1
        for knob in self.knobs.values():
            index += knob.index(values[knob.name]) * stride
            stride *= len(knob)
        return index

    def config(self, values: Mapping[str, Any]) -> Config:
        return self.get(self.index_of(values))

    def is_valid(self, config: Mapping[str, Any]) -> bool:
        return all(predicate(config) for _, predicate in self._constraints)

    # -- numbers for cost models ---------------------------------------------------------
    def vector(self, config: Mapping[str, Any]) -> np.ndarray:
        """The config as a numeric vector: split factors in log2, categorical knobs one-hot."""
        return np.concatenate([np.asarray(k.features(config[k.name]), dtype=np.float32) for k in self.knobs.values()])

    def vectors(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """Vectors of many configs at once (a table lookup per knob: fast enough for annealing)."""
        positions = self.positions(indices)
        return np.hstack([table[positions[:, i]] for i, table in enumerate(self._feature_tables)])

    def positions(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """(n, n_knobs) candidate positions of each index: the mixed-radix digits."""
        indices = np.asarray(indices, dtype=np.int64)
        return (indices[:, None] // self._strides[None, :]) % self.radices[None, :]

    def indices(self, positions: np.ndarray) -> np.ndarray:
        """Inverse of `positions`."""
        return (np.asarray(positions, dtype=np.int64) * self._strides[None, :]).sum(axis=1)

    @cached_property
    def radices(self) -> np.ndarray:
        """Number of candidates of each knob, in definition order."""
        if len(self) >= 2**62:
            raise OverflowError(f"space of {len(self)} points is too large for int64 indices")
        return np.array([len(k) for k in self.knobs.values()], dtype=np.int64)

    @cached_property
    def _strides(self) -> np.ndarray:
        return np.concatenate([[1], np.cumprod(self.radices)[:-1]]).astype(np.int64)

    @cached_property
    def _feature_tables(self) -> list[np.ndarray]:
        return [np.array([k.features(v) for v in k.candidates], dtype=np.float32) for k in self.knobs.values()]

    # -- JSON ----------------------------------------------------------------------------
    def to_json(self, config: Config) -> dict[str, Any]:
        return {"index": config.index, "knobs": {k: self.knobs[k].encode(v) for k, v in config.values.items()}}

    def from_json(self, data: Mapping[str, Any]) -> Config:
        """Config from its JSON form, matched by knob values (the index is only a hint)."""
        knobs = data["knobs"]
        decoded = {name: knob.decode(knobs[name]) for name, knob in self.knobs.items() if name in knobs}
        if len(decoded) != len(knobs):
            raise ValueError(f"knobs {sorted(knobs)} do not match the space's {sorted(self.knobs)}")
        return self.config(decoded)

    # -- search helpers ------------------------------------------------------------------
    def sample(self, rng: random.Random, n: int, exclude: Callable[[int], bool] = lambda i: False) -> list[Config]:
        """Up to `n` distinct valid points drawn uniformly, skipping indices `exclude` rejects."""
        size, picked = len(self), {}
        for _ in range(max(100, 50 * n)):
            if len(picked) == n:
                break
            index = rng.randrange(size)
            if index in picked or exclude(index):
                continue
            config = self.get(index)
            if self.is_valid(config):
                picked[index] = config
        if len(picked) < n and size <= 1_000_000:
            # Rejection sampling stalls when few valid points remain: enumerate the rest.
            rest = [i for i in range(size) if i not in picked and not exclude(i)]
            rng.shuffle(rest)
            for index in rest:
                if len(picked) == n:
                    break
                config = self.get(index)
                if self.is_valid(config):
                    picked[index] = config
        return list(picked.values())

    def neighbors(self, config: Config) -> list[Config]:
        """Valid points that differ from `config` by one step of one knob."""
        result, stride = [], 1
        for knob in self.knobs.values():
            position = (config.index // stride) % len(knob)
            for step in (-1, 1):
                if 0 <= position + step < len(knob):
                    other = self.get(config.index + step * stride)
                    if self.is_valid(other):
                        result.append(other)
            stride *= len(knob)
        return result

    def __repr__(self) -> str:
        knobs = ", ".join(f"{k.name}:{len(k)}" for k in self.knobs.values())
        return f"ConfigSpace({len(self)} points; {knobs})"


def _per_level(bound: int | Sequence[int], levels: int) -> list[int]:
    bounds = [bound] * levels if isinstance(bound, int) else list(bound)
    if len(bounds) != levels:
        raise ValueError(f"expected {levels} per-level bounds, got {len(bounds)}")
    return bounds


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def _next_pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def _short(value: Any) -> str:
    if isinstance(value, tuple):
        return "x".join(str(v) for v in value)
    return str(value)
