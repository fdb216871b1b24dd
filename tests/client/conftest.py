from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from pgportfolio import AsyncPortfolioClient, Monitor, PortfolioClient, RetryPolicy


@pytest.fixture
def monitor() -> Monitor:
    return Monitor()


@pytest.fixture
async def aclient(shared_db: str, monitor: Monitor) -> AsyncIterator[AsyncPortfolioClient]:
    async with AsyncPortfolioClient(
        shared_db, min_size=1, max_size=8, monitor=monitor, retry=RetryPolicy(base_delay=0.001)
    ) as client:
        yield client


@pytest.fixture
def client(shared_db: str, monitor: Monitor) -> Iterator[PortfolioClient]:
    with PortfolioClient(
        shared_db, min_size=1, max_size=8, monitor=monitor, retry=RetryPolicy(base_delay=0.001)
    ) as c:
        yield c
