"""Drive several real sessions through exact interleavings.

A step that should block runs in a thread; ``wait_until_blocked`` watches
``pg_stat_activity`` until that session waits for a lock, so a test knows the
interleaving happened instead of hoping a sleep was long enough.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg


@dataclass
class Background:
    """A call running in a thread; ``join`` returns its value or raises its error."""

    target: Callable[[], Any]
    result: Any = None
    error: BaseException | None = None
    _thread: threading.Thread = field(init=False)

    def __post_init__(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.result = self.target()
        except BaseException as exc:  # handed to join()
            self.error = exc

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    def join(self, timeout: float = 10.0) -> Any:
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError("background step did not finish")
        if self.error is not None:
            raise self.error
        return self.result


def backend_pid(conn: psycopg.Connection[Any]) -> int:
    return conn.info.backend_pid


def wait_until_blocked(
    observer: psycopg.Connection[Any], pid: int, step: Background, timeout: float = 10.0
) -> bool:
    """True once session ``pid`` waits for a lock; False if its step finished first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = observer.execute(
            "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,)
        ).fetchone()
        if row is not None and row[0] == "Lock":
            return True
        if step.done:
            return False
        time.sleep(0.01)
    raise TimeoutError(f"session {pid} neither blocked nor finished")
