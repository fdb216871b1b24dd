"""In CI a skipped test is a failed test.

A skip means a prerequisite was missing (local PostgreSQL binaries, a pgTAP ``# SKIP``),
so the run proved less than it says. On a developer's machine a skip stays a visible
skip with its reason; where the environment variable ``CI`` is set (as every CI service
and ``.ci/run`` set it), the same report becomes a failure naming the reason, so the suite
can never pass by skipping.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Mapping

import pytest

_OFF = {"", "0", "false", "no", "off"}


def in_ci(environ: Mapping[str, str] | None = None) -> bool:
    value = (os.environ if environ is None else environ).get("CI", "")
    return value.strip().lower() not in _OFF


def _skip_reason(report: pytest.CollectReport | pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple):  # (path, line, "Skipped: why")
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def fail_if_skipped_in_ci(report: pytest.CollectReport | pytest.TestReport) -> None:
    """Turn a skip into a failure when running in CI (an xfail is not a skip)."""
    if report.skipped and not hasattr(report, "wasxfail") and in_ci():
        report.outcome = "failed"
        reason = _skip_reason(report)
        report.longrepr = f"skipped in CI, where a missing prerequisite fails: {reason}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    fail_if_skipped_in_ci(report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    report = yield  # a module-level skip or importorskip
    fail_if_skipped_in_ci(report)
    return report
