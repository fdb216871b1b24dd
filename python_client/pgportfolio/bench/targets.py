"""The bounds a run is held to: targets as data, and how a measured value fares.

A scenario states its targets as TargetSpecs (a name, a bound and where the measured value
is found in its result); after the run each becomes a Target with that value, and
``evaluate`` says PASS, MISS or ERROR.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from pgportfolio.bench.results import ScenarioResult

Direction = Literal[">=", "<="]
Status = Literal["PASS", "MISS", "ERROR"]


@dataclass(frozen=True)
class Target:
    scenario: str
    name: str
    direction: Direction
    bound: float
    unit: str
    measured: float | None
    note: str = ""


@dataclass(frozen=True)
class TargetOutcome:
    target: Target
    status: Status
    margin: float | None  # measured / bound - 1: how far above (+) or below (-) the bound

    @property
    def text(self) -> str:
        """``PASS, 20% to spare`` / ``MISS by 76% (x4.17 off)`` / ``ERROR: not measured``."""
        if self.status == "ERROR" or self.margin is None:
            return "ERROR: not measured"
        measured = self.target.measured
        assert measured is not None
        if self.status == "PASS":
            spare = abs(self.margin) if self.margin != 0 else 0.0
            return f"PASS, {spare:.0%} to spare"
        if self.target.direction == ">=":
            factor = self.target.bound / measured if measured > 0 else math.inf
        else:
            factor = measured / self.target.bound if self.target.bound > 0 else math.inf
        return f"MISS by {abs(self.margin):.0%} (x{factor:.2f} off)"


def evaluate(target: Target) -> TargetOutcome:
    """PASS when the measured value is on the right side of the bound (the bound itself
    passes), MISS otherwise, ERROR when nothing was measured."""
    measured = target.measured
    if measured is None or math.isnan(measured):
        return TargetOutcome(target, "ERROR", None)
    margin = measured / target.bound - 1 if target.bound != 0 else math.copysign(math.inf, measured)
    ok = measured >= target.bound if target.direction == ">=" else measured <= target.bound
    return TargetOutcome(target, "PASS" if ok else "MISS", margin)


def format_quantity(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "fills/s":
        return f"{value:,.0f} fills/s"
    if unit == "ms":
        return f"{value:.3f} ms" if value < 10 else f"{value:.1f} ms"
    if unit == "x":
        return f"{value:.2f}x"
    if unit == "MB":
        return f"{value:.1f} MB"
    return f"{value:g} {unit}"


# --- targets as data ----------------------------------------------------------------------

# Where a target's measured value is found in its scenario's result.
Source = Callable[[ScenarioResult], float | None]


def _no_note(result: ScenarioResult) -> str:
    return ""


@dataclass(frozen=True)
class TargetSpec:
    """A target as a scenario states it, before anything is measured."""

    name: str
    direction: Direction
    bound: float
    unit: str
    measured: Source
    note: Callable[[ScenarioResult], str] = _no_note

    def target(self, scenario: str, result: ScenarioResult) -> Target:
        return Target(
            scenario,
            self.name,
            self.direction,
            self.bound,
            self.unit,
            self.measured(result),
            self.note(result),
        )


def variant_value(variant: str, attribute: str) -> Source:
    """A VariantResult attribute; None when the variant did not run or failed."""

    def measured(result: ScenarioResult) -> float | None:
        v = result.variants.get(variant)
        if v is None or v.error is not None:
            return None
        value = getattr(v, attribute)
        return None if value is None else float(value)

    return measured


def ratio_value(name: str) -> Source:
    def measured(result: ScenarioResult) -> float | None:
        return result.ratios.get(name)

    return measured


def read_p50(read: str) -> Source:
    def measured(result: ScenarioResult) -> float | None:
        r = result.reads.get(read)
        return None if r is None else r.p50_ms

    return measured


def extra_value(name: str) -> Source:
    def measured(result: ScenarioResult) -> float | None:
        value: float | None = result.extra.get(name)
        return value

    return measured
