"""pandas DataFrames of a portfolio's positions, events and daily P&L (the ``pandas`` extra).

Money and quantities stay ``decimal.Decimal`` in columns of ``object`` dtype: a float
column would round them. pandas is imported when a frame is built, never when this
module or the client is imported, so the client works without it; building a frame
without it raises ``PandasMissing``, which names the extra to install.

This module reads through the client's public calls (``get_portfolio``, ``event_log``,
``daily_pnl``);
the client knows nothing of it. The ``*_async`` functions take the asyncio client.
"""

from __future__ import annotations

import importlib
from dataclasses import fields
from datetime import date, datetime
from types import ModuleType
from typing import TYPE_CHECKING, Any

from pgportfolio.models import DailyPnl, LoggedEvent, PortfolioSnapshot

if TYPE_CHECKING:
    import pandas as pd

    from pgportfolio._async.client import AsyncPortfolioClient
    from pgportfolio._sync.client import PortfolioClient

INSTALL_HINT = "pip install 'pgportfolio[pandas]'"

# One row per open position, indexed by symbol. The values are PositionSnapshot's:
# market_value (quantity * mark * multiplier) and unrealized_pnl at the mark, or at cost
# without one. multiplier is last, after the columns that were there before it.
POSITION_COLUMNS = (
    "quantity",
    "avg_price",
    "cost_basis",
    "mark_price",
    "market_value",
    "unrealized_pnl",
    "realized_pnl",
    "version",
    "multiplier",
)
# Every column of the event log, indexed by portfolio_version.
EVENT_COLUMNS = tuple(f.name for f in fields(LoggedEvent) if f.name != "portfolio_version")
# Every column of daily_pnl, indexed by day (one portfolio per frame).
DAILY_PNL_COLUMNS = tuple(f.name for f in fields(DailyPnl) if f.name != "day")


class PandasMissing(ImportError):
    """pandas is not installed; the message says how to install it."""


def _pandas() -> ModuleType:
    try:
        return importlib.import_module("pandas")
    except ImportError as exc:
        raise PandasMissing(
            f"DataFrames need pandas, which is not installed: {INSTALL_HINT}",
            name="pandas",
        ) from exc


def positions_to_frame(snapshot: PortfolioSnapshot) -> pd.DataFrame:
    """The open positions of a snapshot, one row per symbol (sorted), index ``symbol``."""
    pandas = _pandas()
    rows: list[dict[str, Any]] = []
    for symbol, p in sorted(snapshot.positions.items()):
        rows.append(
            {
                "symbol": symbol,
                "quantity": p.quantity,
                "avg_price": p.avg_price,
                "cost_basis": p.cost_basis,
                "mark_price": p.mark_price,
                "market_value": p.market_value,
                "unrealized_pnl": p.unrealized_pnl,
                "realized_pnl": p.realized_pnl,
                "version": p.version,
                "multiplier": p.multiplier,
            }
        )
    return _frame(pandas, rows, "symbol", POSITION_COLUMNS, ints=("version",))


def events_to_frame(events: list[LoggedEvent]) -> pd.DataFrame:
    """Logged events, one row per event, index ``portfolio_version``."""
    pandas = _pandas()
    rows = [{f.name: getattr(event, f.name) for f in fields(LoggedEvent)} for event in events]
    return _frame(
        pandas,
        rows,
        "portfolio_version",
        EVENT_COLUMNS,
        ints=("portfolio_version", "portfolio_id"),
        times=("created_at",),
    )


def daily_pnl_to_frame(days: list[DailyPnl]) -> pd.DataFrame:
    """Closed days, one row per day, index ``day`` (``datetime.date`` values)."""
    pandas = _pandas()
    rows = [{f.name: getattr(d, f.name) for f in fields(DailyPnl)} for d in days]
    return _frame(
        pandas,
        rows,
        "day",
        DAILY_PNL_COLUMNS,
        ints=("portfolio_id", "portfolio_version", "open_positions"),
        times=("closed_at",),
    )


def positions_frame(client: PortfolioClient, portfolio_id: int) -> pd.DataFrame:
    """The open positions of a portfolio now, from one snapshot."""
    return positions_to_frame(client.get_portfolio(portfolio_id))


def events_frame(
    client: PortfolioClient, portfolio_id: int, since: int | datetime | None = None
) -> pd.DataFrame:
    """A portfolio's events: all, after version ``since`` (int), or logged at or after
    ``since`` (timezone-aware datetime)."""
    return events_to_frame(client.event_log(portfolio_id, since=since))


def daily_pnl_frame(
    client: PortfolioClient,
    portfolio_id: int,
    since: date | None = None,
    until: date | None = None,
) -> pd.DataFrame:
    """A portfolio's closed days (``close_day``) from ``since`` to ``until`` inclusive:
    the close and its change since the previous close, split into realized, unrealized
    and cash moves."""
    return daily_pnl_to_frame(client.daily_pnl(portfolio_id, since=since, until=until))


async def positions_frame_async(client: AsyncPortfolioClient, portfolio_id: int) -> pd.DataFrame:
    return positions_to_frame(await client.get_portfolio(portfolio_id))


async def events_frame_async(
    client: AsyncPortfolioClient, portfolio_id: int, since: int | datetime | None = None
) -> pd.DataFrame:
    return events_to_frame(await client.event_log(portfolio_id, since=since))


async def daily_pnl_frame_async(
    client: AsyncPortfolioClient,
    portfolio_id: int,
    since: date | None = None,
    until: date | None = None,
) -> pd.DataFrame:
    return daily_pnl_to_frame(await client.daily_pnl(portfolio_id, since=since, until=until))


def _frame(
    pandas: ModuleType,
    rows: list[dict[str, Any]],
    index: str,
    columns: tuple[str, ...],
    *,
    ints: tuple[str, ...] = (),
    times: tuple[str, ...] = (),
) -> pd.DataFrame:
    """A frame with exactly ``columns``, Decimal (and text) columns as ``object`` dtype
    even when empty or all None, ints as int64, times as timezone-aware datetime64."""
    frame = pandas.DataFrame(rows, columns=[index, *columns], dtype=object)
    for name in ints:
        frame[name] = frame[name].astype("int64")
    for name in times:
        frame[name] = pandas.to_datetime(frame[name], utc=True)
    result: pd.DataFrame = frame.set_index(index)
    return result
