"""Run pgTAP files as pytest items and count their assertions.

Each ``tests/pgtap/*.sql`` file is one test item (see ``test_pgtap.py``); it runs through
``psql`` exactly as a person would run it, and its TAP output is parsed here. A failed
item names every ``not ok`` assertion with its diagnostics. An assertion marked
``# SKIP`` or ``# TODO`` is counted as such, never as passed: a file with any is reported
as skipped (and so fails in CI, see ``tests/support/strict_skips.py``). The terminal
summary adds the pgTAP counts, so the run reports both.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

_PLAN = re.compile(r"^1\.\.(\d+)")
_RESULT = re.compile(r"^(not ok|ok)\s+(\d+)\b\s*(?:-\s*)?(.*)$")
# A TAP directive ends the line: "# SKIP why" or "# TODO why" (any case, "skipped" too).
_DIRECTIVE = re.compile(r"\s*(?<!\\)#\s*(SKIP|TODO)\S*\s*(.*)$", re.IGNORECASE)


@dataclass
class TapResult:
    planned: int | None = None
    passed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    todo: list[str] = field(default_factory=list)
    diagnostics: dict[int, list[str]] = field(default_factory=dict)

    @property
    def ran(self) -> int:
        return len(self.passed) + len(self.failed) + len(self.skipped) + len(self.todo)

    def problems(self) -> list[str]:
        found = [f"not ok: {name}" for name in self.failed]
        if self.planned is None:
            found.append("no plan was printed (1..N)")
        elif self.planned != self.ran:
            found.append(f"planned {self.planned} assertions, ran {self.ran}")
        return found


def parse_tap(output: str) -> TapResult:
    result = TapResult()
    last_failed: int | None = None
    for raw in output.splitlines():
        line = raw.strip()
        if match := _PLAN.match(line):
            result.planned = int(match.group(1))
        elif match := _RESULT.match(line):
            status, number, rest = match.groups()
            last_failed = None
            if directive := _DIRECTIVE.search(rest):
                kind, why = directive.group(1).upper(), directive.group(2).strip()
                parts = (f"#{number}", rest[: directive.start()].strip(), f"({kind} {why})")
                label = " ".join(part for part in parts if part).replace(" )", ")")
                # a todo counts as todo whether it failed (as expected) or not
                (result.skipped if kind == "SKIP" else result.todo).append(label)
                continue
            label = f"#{number} {rest}".strip()
            if status == "ok":
                result.passed.append(label)
            else:
                result.failed.append(label)
                last_failed = int(number)
        elif line.startswith("#") and last_failed is not None:
            result.diagnostics.setdefault(last_failed, []).append(line)
    return result


_TOTALS = {"files": 0, "passed": 0, "failed": 0, "skipped": 0, "todo": 0}


def psql_path() -> str:
    found = shutil.which("psql")
    if found:
        return found
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin/psql"), reverse=True):
        return str(candidate)
    raise FileNotFoundError("psql not found; install the PostgreSQL client")


def run_pgtap_file(conninfo: str, path: Path) -> TapResult:
    completed = subprocess.run(
        [psql_path(), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-f", str(path), conninfo],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    result = parse_tap(completed.stdout)
    _TOTALS["files"] += 1
    _TOTALS["passed"] += len(result.passed)
    _TOTALS["failed"] += len(result.failed)
    _TOTALS["skipped"] += len(result.skipped)
    _TOTALS["todo"] += len(result.todo)
    problems = result.problems()
    if completed.returncode != 0:
        problems.append(f"psql exited {completed.returncode}: {completed.stderr.strip()}")
    if problems:
        lines = [f"{path.name}: {len(problems)} problem(s)"]
        for problem in problems:
            lines.append(f"  {problem}")
        for number, diagnostics in sorted(result.diagnostics.items()):
            lines.append(f"  diagnostics for #{number}:")
            lines.extend(f"    {d}" for d in diagnostics)
        pytest.fail("\n".join(lines), pytrace=False)
    if result.skipped or result.todo:
        pytest.skip(
            f"{path.name}: {len(result.skipped)} pgTAP assertion(s) skipped, "
            f"{len(result.todo)} todo: " + "; ".join(result.skipped + result.todo)
        )
    return result


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _TOTALS["files"]:
        total = sum(_TOTALS[k] for k in ("passed", "failed", "skipped", "todo"))
        terminalreporter.write_line(
            f"{total} pgTAP assertions in {_TOTALS['files']} files: {_TOTALS['passed']} passed, "
            f"{_TOTALS['failed']} failed, {_TOTALS['skipped']} skipped, {_TOTALS['todo']} todo"
        )
