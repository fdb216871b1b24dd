"""Which event loop the commands run on (pgportfolio.eventloop), and that it is the one
they say."""

from __future__ import annotations

import asyncio

import pytest

import pgportfolio.eventloop as eventloop
from pgportfolio.bench import BenchSettings, run_bench
from pgportfolio.eventloop import LoopUnavailable, describe_loop, resolve_loop, run_on


def test_auto_takes_uvloop_when_installed_and_asyncio_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(eventloop, "uvloop_installed", lambda: True)
    assert resolve_loop("auto") == "uvloop"
    assert resolve_loop("uvloop") == "uvloop"
    assert resolve_loop("asyncio") == "asyncio"  # asked for: taken even with uvloop there
    monkeypatch.setattr(eventloop, "uvloop_installed", lambda: False)
    assert resolve_loop("auto") == "asyncio"
    assert resolve_loop("asyncio") == "asyncio"


def test_uvloop_asked_for_and_missing_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(eventloop, "uvloop_installed", lambda: False)
    with pytest.raises(LoopUnavailable, match=r"pip install 'pgportfolio\[uvloop\]'"):
        resolve_loop("uvloop")


def test_bench_with_a_missing_uvloop_exits_2_before_starting_anything(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(eventloop, "uvloop_installed", lambda: False)
    # A DSN nothing listens on: had the run started, it would fail with status 1.
    settings = BenchSettings(
        dsn="host=127.0.0.1 port=1 connect_timeout=1", loop="uvloop", quick=True
    )
    assert run_bench(settings) == 2
    assert "uvloop is not installed" in capsys.readouterr().out


async def _running_loop_type() -> type:
    return type(asyncio.get_running_loop())


async def test_async_tests_run_on_the_loop_asked_for(pytestconfig: pytest.Config) -> None:
    # CI runs the client's tests a second time with --event-loop uvloop (tests/support).
    asked = pytestconfig.getoption("event_loop")
    running = type(asyncio.get_running_loop()).__module__
    assert running.startswith("uvloop") == (asked == "uvloop"), (asked, running)


def test_run_on_runs_on_the_loop_it_names() -> None:
    on_asyncio = run_on("asyncio", _running_loop_type())
    assert "uvloop" not in on_asyncio.__module__
    assert describe_loop("asyncio") == "asyncio"
    if not eventloop.uvloop_installed():
        pytest.skip("uvloop is not installed here (it is in the dev extra)")
    on_uvloop = run_on("uvloop", _running_loop_type())
    assert on_uvloop.__module__.startswith("uvloop")
    assert describe_loop("uvloop").startswith("uvloop ")
