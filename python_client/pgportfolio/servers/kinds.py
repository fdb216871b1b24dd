"""What every provider hands back."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

ServerKind = Literal["dsn", "docker", "local", "embedded"]


@dataclass(frozen=True)
class Server:
    dsn: str  # superuser conninfo to the maintenance database
    kind: ServerKind
    bindir: Path | None = None  # the binaries of a throwaway cluster (local, embedded)
