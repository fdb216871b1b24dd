"""pgportfolio: a PostgreSQL-native portfolio and position ledger, and its thin client.

The database is the source of truth; see docs/sql-api.md. This package adds what only a
process can add: per-portfolio locks, retries, request ids, measurement.
"""

import logging

from pgportfolio._async.client import AsyncPortfolioClient
from pgportfolio._async.handles import AsyncPortfolio, AsyncPositionManager
from pgportfolio._async.locks import AsyncLockRegistry, AsyncMonitoredLock
from pgportfolio._sync.client import PortfolioClient
from pgportfolio._sync.handles import Portfolio, PositionManager
from pgportfolio._sync.locks import LockRegistry
from pgportfolio._sync.locks import MonitoredLock as ThreadMonitoredLock
from pgportfolio.errors import (
    ClosingMarkMissing,
    ConnectionLost,
    ConnectionUnavailable,
    InProcessLockTimeout,
    InstrumentHeld,
    InsufficientCash,
    InsufficientPosition,
    InvalidInput,
    LockTimeout,
    NotPermitted,
    OptimisticLockError,
    OutcomeUnknown,
    PortfolioError,
    PortfolioNotFound,
    PositionAlreadyOpen,
    ReplicationUnconfirmed,
    RequestIdReused,
    TransientConflict,
    VersionConflict,
)
from pgportfolio.models import (
    ChangeEvent,
    DailyClose,
    DailyPnl,
    HistoricalPortfolio,
    HistoricalPosition,
    LoggedEvent,
    MutationResult,
    PortfolioSnapshot,
    PositionRequest,
    PositionSnapshot,
    VerificationCheck,
)
from pgportfolio.monitor import Monitor, get_global_monitor
from pgportfolio.operations import ChargeFee, Deposit, Fill, Order, Withdraw
from pgportfolio.retry import RetryPolicy

# The "pgportfolio" logger says what a caller may need to act on: retries (INFO), a call
# resolved by its request id after a lost connection (WARNING), an unknown outcome
# (ERROR), a pool that cannot connect (WARNING). Silent unless the application configures
# logging, as libraries should be.
logging.getLogger("pgportfolio").addHandler(logging.NullHandler())

# The seed's name for the measured lock is the asyncio one.
MonitoredLock = AsyncMonitoredLock

__version__ = "0.1.0"

__all__ = [
    "AsyncLockRegistry",
    "AsyncMonitoredLock",
    "AsyncPortfolio",
    "AsyncPortfolioClient",
    "AsyncPositionManager",
    "ChangeEvent",
    "ChargeFee",
    "ClosingMarkMissing",
    "ConnectionLost",
    "ConnectionUnavailable",
    "DailyClose",
    "DailyPnl",
    "Deposit",
    "Fill",
    "HistoricalPortfolio",
    "HistoricalPosition",
    "InProcessLockTimeout",
    "InstrumentHeld",
    "InsufficientCash",
    "InsufficientPosition",
    "InvalidInput",
    "LockRegistry",
    "LockTimeout",
    "LoggedEvent",
    "Monitor",
    "MonitoredLock",
    "MutationResult",
    "NotPermitted",
    "OptimisticLockError",
    "Order",
    "OutcomeUnknown",
    "Portfolio",
    "PortfolioClient",
    "PortfolioError",
    "PortfolioNotFound",
    "PortfolioSnapshot",
    "PositionAlreadyOpen",
    "PositionManager",
    "PositionRequest",
    "PositionSnapshot",
    "ReplicationUnconfirmed",
    "RequestIdReused",
    "RetryPolicy",
    "ThreadMonitoredLock",
    "TransientConflict",
    "VerificationCheck",
    "VersionConflict",
    "Withdraw",
    "get_global_monitor",
]
