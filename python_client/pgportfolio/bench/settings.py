"""What one run is asked to do: the command's options, and the sizes they come to."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from pgportfolio.eventloop import LoopChoice
from pgportfolio.servers import ServerChoice


@dataclass(frozen=True)
class Sizes:
    """How big a run is: full (the issue's numbers) or quick (the test suite's)."""

    duration: float
    warmup: float
    traders: int
    rounds: int  # alternating halves when two variants are compared against each other
    symbols: int
    spread_portfolios: int
    wide_positions: int
    narrow_positions: int
    ticks_per_second: int
    tick_chunk: int
    read_samples: int
    soak_fills: int
    import_rows: int


FULL = Sizes(
    duration=10.0,
    warmup=1.0,
    traders=100,
    rounds=2,
    symbols=10_000,
    spread_portfolios=1_000,
    wide_positions=10_000,
    narrow_positions=10,
    ticks_per_second=10_000,
    tick_chunk=1_000,
    read_samples=50,
    soak_fills=5_000_000,
    import_rows=1_000_000,
)
QUICK = Sizes(
    duration=1.0,
    warmup=0.2,
    traders=10,
    rounds=1,
    symbols=200,
    spread_portfolios=20,
    wide_positions=500,
    narrow_positions=10,
    ticks_per_second=1_000,
    tick_chunk=100,
    read_samples=5,
    soak_fills=3_000,
    import_rows=20_000,
)


@dataclass
class BenchSettings:
    dsn: str | None = None
    scenarios: tuple[str, ...] = ()  # empty: the default set (see default_scenarios)
    duration: float | None = None  # seconds per measurement; default from Sizes
    traders: int | None = None  # default from Sizes: 100, or 10 with quick
    batch: int = 50
    connections: int = 16  # the client's pool size, and pgbench's -c
    quick: bool = False
    soak_fills: int | None = None
    import_rows: int | None = None
    json_path: Path | None = None
    plot_path: Path | None = None
    seed: int = 1
    strict: bool = False  # a missed target makes the exit status non-zero
    server: ServerChoice = "auto"  # with no dsn: which throwaway server (pgportfolio.servers)
    loop: LoopChoice = "auto"  # the event loop the client runs on (pgportfolio.eventloop)

    @property
    def sizes(self) -> Sizes:
        base = QUICK if self.quick else FULL
        return Sizes(
            **{
                **asdict(base),
                "duration": self.duration or base.duration,
                "traders": self.traders or base.traders,
                "soak_fills": self.soak_fills or base.soak_fills,
                "import_rows": self.import_rows or base.import_rows,
            }
        )
