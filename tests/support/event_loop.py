"""``pytest --event-loop uvloop``: the async tests on uvloop instead of asyncio's own loop.

The client runs on whatever loop its service picks, and the package's commands take uvloop
when it is installed (pgportfolio.eventloop), so CI runs the client's tests on both.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--event-loop",
        choices=("asyncio", "uvloop"),
        default="asyncio",
        help="the event loop the async tests run on (default: asyncio's own)",
    )


def pytest_configure(config: pytest.Config) -> None:
    # Registered only when asked for: with the hook in place, pytest-asyncio takes its
    # loops from it alone.
    if config.getoption("event_loop") == "uvloop":
        config.pluginmanager.register(_Uvloop(), "pgportfolio-uvloop")


class _Uvloop:
    def pytest_asyncio_loop_factories(
        self, config: pytest.Config, item: pytest.Item
    ) -> Mapping[str, Callable[[], Any]]:
        import uvloop

        return {"uvloop": uvloop.new_event_loop}
