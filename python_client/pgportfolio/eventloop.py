"""The event loop that the package's own commands (demo and bench) run on.

The client runs on any asyncio event loop: a service picks its own. uvloop (the
``pgportfolio[uvloop]`` extra) runs the same client code with fewer instructions: in
callgrind counts of the client process, a lone ``apply_fill`` 24% fewer and a coalesced
fill 6% fewer (docs/performance.md). The commands take it when it is installed, unless
told ``--loop asyncio``, and say which one ran.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import importlib.util
from collections.abc import Coroutine
from typing import Any, Literal, TypeVar

T = TypeVar("T")

LoopChoice = Literal["auto", "asyncio", "uvloop"]
LoopName = Literal["asyncio", "uvloop"]
LOOP_CHOICES: tuple[LoopChoice, ...] = ("auto", "asyncio", "uvloop")


class LoopUnavailable(RuntimeError):
    """``uvloop`` was asked for and is not installed."""


def uvloop_installed() -> bool:
    return importlib.util.find_spec("uvloop") is not None


def resolve_loop(choice: LoopChoice) -> LoopName:
    """The loop ``choice`` comes to: auto is uvloop when it is installed, else asyncio's
    own."""
    if choice == "asyncio":
        return "asyncio"
    if uvloop_installed():
        return "uvloop"
    if choice == "uvloop":
        raise LoopUnavailable("uvloop is not installed: pip install 'pgportfolio[uvloop]'")
    return "asyncio"


def describe_loop(loop: LoopName) -> str:
    """The loop and its version, for a report: ``uvloop 0.21.0`` or ``asyncio``."""
    if loop == "uvloop":
        return f"uvloop {importlib.metadata.version('uvloop')}"
    return "asyncio"


def run_on(loop: LoopName, main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on ``loop``."""
    if loop == "uvloop":
        import uvloop

        return uvloop.run(main)
    return asyncio.run(main)
