"""pgportfolio.frames: DataFrames of positions and events, Decimal kept exact, and the
error that names the extra when pandas is missing."""

from __future__ import annotations

import importlib
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from types import ModuleType

import pandas as pd
import psycopg
import pytest

from pgportfolio import AsyncPortfolioClient, PortfolioClient, frames


def _decimal_column(frame: pd.DataFrame, name: str) -> list[D | None]:
    column = frame[name]
    assert column.dtype == object, (name, column.dtype)
    values = list(column)
    assert all(v is None or isinstance(v, D) for v in values), (name, values)
    return values


def test_positions_frame(client: PortfolioClient) -> None:
    pid = client.create_portfolio("frames", D(100000))
    client.apply_fill(pid, "FRA", D(3), D("10.10"))
    client.apply_fill(pid, "FRA", D(1), D("10.13"))
    client.apply_fill(pid, "FRB", D(-2), D("0.00000001"))
    client.update_market_price("FRA", D("11.12345678"))
    frame = frames.positions_frame(client, pid)
    assert list(frame.index) == ["FRA", "FRB"]
    assert frame.index.name == "symbol"
    assert tuple(frame.columns) == frames.POSITION_COLUMNS
    assert _decimal_column(frame, "quantity") == [D(4), D(-2)]
    assert _decimal_column(frame, "cost_basis") == [D("40.43"), D("-0.00000002")]
    assert _decimal_column(frame, "mark_price")[0] == D("11.12345678")
    assert _decimal_column(frame, "market_value")[0] == D("44.49382712")  # 4 x mark, exact
    assert _decimal_column(frame, "unrealized_pnl")[0] == D("44.49382712") - D("40.43")
    assert frame["version"].dtype == "int64"
    # The same numbers as the snapshot the frame was built from.
    snapshot = client.get_portfolio(pid)
    assert frame.loc["FRB", "mark_price"] == snapshot.positions["FRB"].mark_price


def test_positions_frame_shows_each_positions_multiplier(
    client: PortfolioClient, shared_db: str
) -> None:
    pid = client.create_portfolio("frames multipliers", D(1))
    # Written directly as the fill path leaves them: the cost basis includes the multiplier.
    with psycopg.connect(shared_db, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO pgportfolio.positions"
            " (portfolio_id, symbol, quantity, cost_basis, multiplier)"
            " VALUES (%s, 'FRMF', 2, 10000, 50), (%s, 'FRMP', 5, 50, 1)",
            [pid, pid],
        )
    client.update_market_price("FRMF", D("101.5"))
    frame = frames.positions_frame(client, pid)
    assert tuple(frame.columns)[-1] == "multiplier"
    assert _decimal_column(frame, "multiplier") == [D(50), D(1)]
    assert _decimal_column(frame, "market_value") == [D("10150.0"), D(50)]  # 2 x 101.5 x 50
    assert _decimal_column(frame, "unrealized_pnl") == [D("150.0"), D(0)]
    assert _decimal_column(frame, "avg_price") == [D("100.00000000"), D("10.00000000")]


def test_empty_positions_frame_keeps_its_columns(client: PortfolioClient) -> None:
    pid = client.create_portfolio("frames empty", D(1))
    frame = frames.positions_frame(client, pid)
    assert frame.empty
    assert tuple(frame.columns) == frames.POSITION_COLUMNS
    assert frame["quantity"].dtype == object


def test_events_frame_all_and_since(client: PortfolioClient) -> None:
    pid = client.create_portfolio("frames events", D(1000))
    client.deposit_cash(pid, D("0.01"))
    client.apply_fill(pid, "FRE", D(2), D("1.5"), fee=D("0.25"))
    frame = frames.events_frame(client, pid)
    assert list(frame.index) == [1, 2, 3]
    assert frame.index.name == "portfolio_version"
    assert tuple(frame.columns) == frames.EVENT_COLUMNS
    assert list(frame["kind"]) == ["create", "deposit", "open"]
    assert _decimal_column(frame, "cash_delta") == [D(1000), D("0.01"), D("-3.25")]
    assert _decimal_column(frame, "quantity") == [None, None, D(2)]
    assert str(frame["created_at"].dtype).startswith("datetime64[")
    assert frame["created_at"].dt.tz is not None
    after_one = frames.events_frame(client, pid, since=1)
    assert list(after_one.index) == [2, 3]
    assert list(frames.events_frame(client, pid, since=3).index) == []
    logged = frame["created_at"].iloc[2].to_pydatetime()
    assert list(frames.events_frame(client, pid, since=logged).index) == [3]
    later = datetime.now(UTC) + timedelta(hours=1)
    assert frames.events_frame(client, pid, since=later).empty


async def test_async_frames(aclient: AsyncPortfolioClient) -> None:
    pid = await aclient.create_portfolio("frames async", D(500))
    await aclient.apply_fill(pid, "FRS", D(5), D("2.2"))
    positions = await frames.positions_frame_async(aclient, pid)
    assert _decimal_column(positions, "cost_basis") == [D("11.0")]
    events = await frames.events_frame_async(aclient, pid, since=1)
    assert list(events["symbol"]) == ["FRS"]


def test_missing_pandas_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = importlib.import_module

    def no_pandas(name: str, package: str | None = None) -> ModuleType:
        if name == "pandas":
            raise ModuleNotFoundError("No module named 'pandas'", name="pandas")
        return real_import(name, package)

    monkeypatch.setattr(importlib, "import_module", no_pandas)
    with pytest.raises(frames.PandasMissing) as missing:
        frames.events_to_frame([])
    assert isinstance(missing.value, ImportError)
    assert "pip install 'pgportfolio[pandas]'" in str(missing.value)
    assert isinstance(missing.value.__cause__, ModuleNotFoundError)


def test_the_client_does_not_import_pandas() -> None:
    # A fresh interpreter: importing the package and the frames module loads no pandas.
    code = "import sys, pgportfolio, pgportfolio.frames; print('pandas' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
