"""When to retry, and how long to wait.

Only the whole call is retried, and only when that is known to be safe: a transient
conflict in PostgreSQL (40001, 40P01), a lock wait that timed out (55P03), or a
connection that failed before the request was sent. Business errors are final. A
connection lost while a mutation was in flight is not retried blind: the client first
asks the database what became of the request id.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from pgportfolio.errors import (
    ConnectionUnavailable,
    LockTimeout,
    PortfolioError,
    TransientConflict,
)


@dataclass(frozen=True)
class RetryPolicy:
    """Capped exponential backoff with full jitter: the n-th retry waits a uniform random
    time in [0, min(cap, base * 2**(n-1))]."""

    max_retries: int = 3
    base_delay: float = 0.005
    max_delay: float = 0.5
    jitter: bool = True
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.max_retries < 0 or self.base_delay < 0 or self.max_delay < self.base_delay:
            raise ValueError("need max_retries >= 0 and 0 <= base_delay <= max_delay")

    def ceiling(self, retry_number: int) -> float:
        """The longest wait before retry ``retry_number`` (1-based)."""
        return min(self.max_delay, self.base_delay * (2.0 ** (retry_number - 1)))

    def delay(self, retry_number: int) -> float:
        ceiling = self.ceiling(retry_number)
        return float(self.rng.uniform(0.0, ceiling)) if self.jitter else ceiling


def retry_cause(exc: PortfolioError) -> str | None:
    """The retry cause for a retryable error (used as a metric label), else None."""
    if isinstance(exc, TransientConflict):
        return "deadlock" if exc.sqlstate == "40P01" else "serialization"
    if isinstance(exc, LockTimeout) and exc.sqlstate == "55P03":
        return "lock_timeout"
    if isinstance(exc, ConnectionUnavailable) and not exc.pool_timeout:
        return "connection"
    # A pool timeout is not retried: the caller already waited pool_timeout, and the pool
    # itself replaces broken connections (health check on checkout) within that wait.
    return None
