"""The random fills: one distribution for the client and for pgbench.

A symbol uniform over the scenario's symbols, a signed quantity of 1..100 either way (so
fills open, add, reduce, close and flip), a price of 10.00..200.00.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

MIN_QUANTITY, MAX_QUANTITY = 1, 100
MIN_CENTS, MAX_CENTS = 1_000, 20_000
DECK_BITS = 14
DECK_SIZE = 1 << DECK_BITS  # 16,384 fills: drawn in about 50 ms


@dataclass(frozen=True)
class FillPlan:
    """Which portfolios and symbols a scenario's random fills go to."""

    first_pid: int
    portfolios: int
    symbols: tuple[str, ...]

    @classmethod
    def of(cls, portfolio_ids: Sequence[int], symbol_count: int) -> FillPlan:
        ids = sorted(portfolio_ids)
        if ids != list(range(ids[0], ids[0] + len(ids))):
            raise RuntimeError("the scenario's portfolio ids are not contiguous")
        return cls(ids[0], len(ids), symbol_names(symbol_count))

    @property
    def last_pid(self) -> int:
        return self.first_pid + self.portfolios - 1

    def draw(self, rng: random.Random) -> tuple[int, str, int, Decimal]:
        pid = self.first_pid + rng.randrange(self.portfolios)
        quantity = rng.randint(MIN_QUANTITY, MAX_QUANTITY) * (1 if rng.random() < 0.5 else -1)
        price = Decimal(rng.randint(MIN_CENTS, MAX_CENTS)).scaleb(-2)
        return pid, rng.choice(self.symbols), quantity, price

    def deck(self, rng: random.Random) -> tuple[tuple[int, str, int, Decimal], ...]:
        """DECK_SIZE fills drawn ahead, for callers that pick one at random per call
        (``deck[rng.getrandbits(DECK_BITS)]``, about 0.2 µs) instead of drawing it (about
        3 µs, which the measured process would otherwise count as the client's CPU)."""
        return tuple(self.draw(rng) for _ in range(DECK_SIZE))

    def pgbench_variables(self) -> dict[str, int]:
        return {
            "first_pid": self.first_pid,
            "last_pid": self.last_pid,
            "symbols": len(self.symbols),
        }


def symbol_names(count: int) -> tuple[str, ...]:
    return tuple(f"S{n}" for n in range(1, count + 1))
