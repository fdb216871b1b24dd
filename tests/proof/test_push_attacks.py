"""Push updates under attack: forged notifications and eavesdroppers.

Any role that can connect may ``NOTIFY`` on any channel and ``LISTEN`` on any channel;
PostgreSQL has no privilege for either. So a subscriber must not be stopped, fooled or
replayed by what arrives on a channel, and a role that may read nothing of the ledger
must learn nothing of its changes (docs/sql-api.md, "Push updates").

The cast: a trader who owns the portfolios and subscribes, and an outsider with no
pgportfolio membership at all (standing in for any role that can merely connect).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from decimal import Decimal

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from pgportfolio import AsyncPortfolioClient, ChangeEvent, Fill, Monitor, NotPermitted
from tests.conftest import DatabaseFactory

pytestmark = pytest.mark.timeout(120)

# How long a subscriber gets to deliver an event at most, before a test gives up on it.
DELIVERY_TIMEOUT = 10.0


@dataclass(frozen=True)
class Cast:
    db: str  # superuser conninfo
    trader: str
    outsider: str

    def dsn(self, role: str) -> str:
        return make_conninfo(self.db, user=role)


@pytest.fixture(scope="module")
def cast(
    admin_conninfo: str, database_factory: DatabaseFactory, template_database: str
) -> Iterator[Cast]:
    suffix = secrets.token_hex(4)
    trader, outsider = f"pgp_push_trader_{suffix}", f"pgp_push_out_{suffix}"
    db = database_factory(template=template_database)
    with psycopg.connect(admin_conninfo, autocommit=True) as su:
        su.execute(
            sql.SQL("CREATE ROLE {} LOGIN IN ROLE pgportfolio_trader").format(
                sql.Identifier(trader)
            )
        )
        su.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(outsider)))
    try:
        yield Cast(db, trader, outsider)
    finally:
        with psycopg.connect(db, autocommit=True) as su:
            for role in (trader, outsider):
                su.execute(sql.SQL("DROP OWNED BY {} CASCADE").format(sql.Identifier(role)))
        with psycopg.connect(admin_conninfo, autocommit=True) as su:
            # The database keeps events naming the trader (acting_role is a name, not a
            # reference), so the roles can go before the database does.
            for role in (trader, outsider):
                su.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


@pytest.fixture
async def trader(cast: Cast) -> AsyncIterator[AsyncPortfolioClient]:
    async with AsyncPortfolioClient(
        cast.dsn(cast.trader), min_size=1, max_size=4, monitor=Monitor()
    ) as client:
        yield client


def forge(cast: Cast, portfolio_id: int, payload: str) -> None:
    """The outsider sends ``payload`` on the portfolio's channel, as a real mutation did
    before push updates stopped using NOTIFY."""
    with psycopg.connect(cast.dsn(cast.outsider), autocommit=True) as outsider:
        outsider.execute(
            sql.SQL("NOTIFY {}, {}").format(
                sql.Identifier(f"pgportfolio_{portfolio_id}"), sql.Literal(payload)
            )
        )


async def collect_until(
    stream: AsyncIterator[ChangeEvent], last: dict[int, int]
) -> list[tuple[int, int, str, bool]]:
    """Everything the stream yields until it has yielded version ``last[pid]`` of each
    portfolio, as (portfolio, version, kind, gap)."""
    got: list[tuple[int, int, str, bool]] = []
    pending = dict(last)
    while pending:
        event = await asyncio.wait_for(anext(stream), DELIVERY_TIMEOUT)
        got.append((event.portfolio_id, event.version, event.kind, event.gap))
        if pending.get(event.portfolio_id) == event.version:
            del pending[event.portfolio_id]
    return got


# Payloads an outsider may send on pgportfolio_<id> while version 11 (a deposit) is the
# portfolio's latest. Before the fix, the first five each stopped the subscriber or made
# it yield an event twice, backwards, or one no mutation sent.
FORGERIES = {
    "bigint overflow": "9223372036854775808:deposit",
    "replay of version 11": "11:deposit",
    "replay of the create": "1:create",
    "padded replay": " 11 :deposit",
    "Arabic-Indic digits": "\u0661\u0661:deposit",
    "wrong kind": "11:withdraw",
    "future version": "99:deposit",
    "negative version": "-1:deposit",
    "no separator": "garbage",
    "empty": "",
    "long": "1" * 7000 + ":deposit",
}


@pytest.mark.parametrize("payload", FORGERIES.values(), ids=FORGERIES.keys())
async def test_a_forged_notification_neither_stops_nor_fools_a_subscriber(
    cast: Cast, trader: AsyncPortfolioClient, payload: str
) -> None:
    """The subscriber yields the resync, then exactly the real versions 2..12, in order,
    once each, with their real kinds, whatever was forged between 11 and 12."""
    pid = await trader.create_portfolio("forged", Decimal(1000))
    stream = trader.subscribe([pid])
    try:
        first = await asyncio.wait_for(anext(stream), DELIVERY_TIMEOUT)
        assert (first.portfolio_id, first.version, first.kind, first.gap) == (
            pid,
            1,
            "resync",
            True,
        )
        for _ in range(10):
            await trader.deposit_cash(pid, Decimal(1))  # versions 2..11
        forge(cast, pid, payload)
        await trader.withdraw_cash(pid, Decimal(1))  # version 12, after the forgery
        got = await collect_until(stream, {pid: 12})
    finally:
        await stream.aclose()
    expected = [(pid, v, "deposit", False) for v in range(2, 12)] + [(pid, 12, "withdraw", False)]
    assert got == expected


async def test_a_flood_of_forgeries_on_every_channel_changes_nothing(
    cast: Cast, trader: AsyncPortfolioClient
) -> None:
    """Two portfolios followed by one subscriber; every forgery above on both channels,
    and replays of the other portfolio's real events, interleaved with real mutations:
    the subscriber yields exactly the event log of each portfolio after its resync."""
    a = await trader.create_portfolio("flood a", Decimal(1000))
    b = await trader.create_portfolio("flood b", Decimal(1000))
    stream = trader.subscribe([a, b])
    try:
        starts = [await asyncio.wait_for(anext(stream), DELIVERY_TIMEOUT) for _ in range(2)]
        assert sorted((e.portfolio_id, e.version, e.kind, e.gap) for e in starts) == [
            (a, 1, "resync", True),
            (b, 1, "resync", True),
        ]
        for round_ in range(3):
            await trader.deposit_cash(a, Decimal(1))
            await trader.apply_fill(b, "FLD", Decimal(1), Decimal(2))
            for payload in FORGERIES.values():
                forge(cast, a, payload)
                forge(cast, b, payload)
            forge(cast, a, f"{round_ + 2}:open")  # b's real event, on a's channel
        await trader.charge_fee(a, Decimal(1))
        await trader.charge_fee(b, Decimal(1))
        got = await collect_until(stream, {a: 5, b: 5})
    finally:
        await stream.aclose()
    assert [e for e in got if e[0] == a] == [(a, v, "deposit", False) for v in (2, 3, 4)] + [
        (a, 5, "fee", False)
    ]
    assert [e for e in got if e[0] == b] == [
        (b, 2, "open", False),
        (b, 3, "add", False),
        (b, 4, "add", False),
        (b, 5, "fee", False),
    ]


async def test_an_outsider_hears_nothing_of_the_ledger(
    cast: Cast, trader: AsyncPortfolioClient
) -> None:
    """The outsider LISTENs on the portfolio's channel (PostgreSQL lets any role) while
    the trader makes every kind of change: the only thing it hears is its own probe, so
    the channel works and the ledger says nothing on it."""
    pid = await trader.create_portfolio("eavesdropped", Decimal(1000))
    channel = sql.Identifier(f"pgportfolio_{pid}")
    async with await psycopg.AsyncConnection.connect(
        cast.dsn(cast.outsider), autocommit=True
    ) as outsider:
        await outsider.execute(sql.SQL("LISTEN {}").format(channel))
        await trader.deposit_cash(pid, Decimal(5))
        await trader.withdraw_cash(pid, Decimal(1))
        await trader.charge_fee(pid, Decimal(1))
        await trader.apply_fill(pid, "EVD", Decimal(3), Decimal(2))
        await trader.apply_fills([(pid, Fill("EVD", Decimal(1), Decimal(2)))] * 3)
        await trader.close_position(pid, "EVD", Decimal(3))
        # Sent last: the queue delivers in commit order, so it is heard after anything
        # the mutations above had sent.
        await outsider.execute(sql.SQL("NOTIFY {}, 'probe'").format(channel))
        heard = []
        async for note in outsider.notifies(timeout=DELIVERY_TIMEOUT):
            heard.append(note.payload)
            if note.payload == "probe":
                break
    assert heard == ["probe"]


@pytest.mark.parametrize(
    "query",
    [
        "SELECT * FROM pgportfolio.events_after(ARRAY[%(p)s]::bigint[], ARRAY[0]::bigint[])",
        "SELECT * FROM pgportfolio.events_since(%(p)s, 0)",
        "SELECT * FROM pgportfolio.event_log WHERE portfolio_id = %(p)s",
        "SELECT pgportfolio.portfolio_version(%(p)s)",
    ],
    ids=["events_after", "events_since", "event_log", "portfolio_version"],
)
async def test_an_outsider_may_not_read_what_subscribers_read(
    cast: Cast, trader: AsyncPortfolioClient, query: str
) -> None:
    """What the subscriber reads is refused to the outsider (42501); the trader reads it
    (the control: the query itself is right)."""
    pid = await trader.create_portfolio("not yours to read", Decimal(1000))
    await trader.deposit_cash(pid, Decimal(1))
    with psycopg.connect(cast.dsn(cast.trader), autocommit=True) as conn:
        assert conn.execute(query, {"p": pid}).fetchall()
    with (
        psycopg.connect(cast.dsn(cast.outsider), autocommit=True) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        conn.execute(query, {"p": pid})


async def test_an_outsider_cannot_subscribe(cast: Cast, trader: AsyncPortfolioClient) -> None:
    """subscribe() as the outsider is refused (NotPermitted, 42501) before it yields
    anything: no resync, no version, no kind."""
    pid = await trader.create_portfolio("no stream for strangers", Decimal(1000))
    await trader.deposit_cash(pid, Decimal(1))
    async with AsyncPortfolioClient(
        cast.dsn(cast.outsider), min_size=1, max_size=1, monitor=Monitor()
    ) as outsider:
        stream = outsider.subscribe([pid])
        with pytest.raises(NotPermitted) as refused:
            await asyncio.wait_for(anext(stream), DELIVERY_TIMEOUT)
        await stream.aclose()
    assert refused.value.sqlstate == "42501"
