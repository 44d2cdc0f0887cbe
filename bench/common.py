"""Shared plumbing for the benchmarks: result rows, processes, ports, configs, databases.

Every bench module returns `Row`s; `bench/__main__.py` prints them as one table.
A row holds a measured figure beside a baseline measured in the same run, so the
ratio means something even on a noisy machine.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH_VENV_PYTHON = ROOT / "bench" / ".venv" / "bin" / "python"
PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgres://postgres@127.0.0.1:5432/postgres")
# A database of our own: `test` belongs to the test suites that may be running right now.
PG_BENCH_DB = os.environ.get("BENCH_PG_DB", "bench")
PHONE_NUMBER_ID = "111"
WEBHOOK_PATH = "/webhooks/whatsapp"
# Fixed so that a run is repeatable; these are bench-only secrets, handed over in the
# environment as the bot expects (`${...}` in the config).
SECRETS = {
    "BENCH_WA_TOKEN": "bench-token",
    "BENCH_WA_APP_SECRET": "bench-app-secret",
    "BENCH_WA_VERIFY_TOKEN": "bench-verify",
    "GROUNDWORK_SECRET_KEY": base64.urlsafe_b64encode(b"b" * 32).decode(),
}


@dataclass
class Row:
    """One line of the table: a figure, its same-run baseline, and the target."""

    bench: str
    figure: str
    value: float | None
    unit: str
    baseline_name: str = ""
    baseline: float | None = None
    target: str = ""
    ok: bool | None = None  # None: no target, or not measurable
    note: str = ""
    samples: list[float] = field(default_factory=list)  # the repeats the value is a median of
    baseline_samples: list[float] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # raw figures, for --json dumps

    @property
    def ratio(self) -> float | None:
        if self.value is None or not self.baseline:
            return None
        return self.value / self.baseline

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Row:
        return cls(**data)


def na(bench: str, figure: str, reason: str, target: str = "") -> Row:
    """A figure that could not be measured here, with the reason instead of a number."""
    return Row(bench, figure, None, "", target=target, ok=None, note=f"n/a: {reason}")


# --- statistics ---------------------------------------------------------------------------


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (no interpolation: the value some request really saw)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    clean = [v for v in values if v is not None and not math.isnan(v)]
    return statistics.median(clean) if clean else math.nan


# --- processes ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bench_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(SECRETS)
    # A deployment has its bytecode compiled; a sandbox that sets PYTHONDONTWRITEBYTECODE
    # would make every start recompile the bot. Cache it outside the work tree instead.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(Path(tempfile.gettempdir()) / "groundwork-bench-pycache")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def spawn(args: Sequence[str], log: Path | None = None, env: dict[str, str] | None = None,
          ) -> subprocess.Popen[bytes]:
    if log is None:
        return subprocess.Popen(list(args), cwd=ROOT, env=env or bench_env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                stdin=subprocess.DEVNULL)
    with open(log, "ab") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(list(args), cwd=ROOT, env=env or bench_env(), stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def stop(proc: subprocess.Popen[bytes], timeout: float = 60.0) -> int:
    """SIGTERM (the bot drains in-flight work on it), then SIGKILL if it hangs."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def wait_http(url: str, timeout: float = 60.0, interval: float = 0.005,
              proc: subprocess.Popen[bytes] | None = None) -> float:
    """Poll until `url` answers 200; returns the seconds it took. Raises on timeout."""
    started = time.perf_counter()
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1.0) as resp:  # loopback only
                if resp.status == 200:
                    return time.perf_counter() - started
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{url}: the server exited with {proc.returncode} before answering")
        if time.perf_counter() - started > timeout:
            raise TimeoutError(f"{url} did not answer 200 within {timeout:.0f} s")
        time.sleep(interval)


def get_json(url: str, timeout: float = 10.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # loopback only
        return json.loads(resp.read())


def run_json(args: Sequence[str], timeout: float, log: Path | None = None,
             env: dict[str, str] | None = None) -> Any:
    """Run a helper to completion and parse the JSON it prints last on stdout."""
    if log is None:
        done = subprocess.run(list(args), cwd=ROOT, env=env or bench_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              stdin=subprocess.DEVNULL, timeout=timeout, check=False)
    else:
        with open(log, "ab") as err:
            done = subprocess.run(list(args), cwd=ROOT, env=env or bench_env(),
                                  stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL,
                                  timeout=timeout, check=False)
    lines = [ln for ln in done.stdout.decode().splitlines() if ln.strip()]
    if done.returncode != 0 or not lines:
        where = f" (see {log})" if log is not None else ""
        raise RuntimeError(f"{' '.join(args[:4])} ... exited {done.returncode}{where}")
    return json.loads(lines[-1])


def py(*module_args: str) -> list[str]:
    return [sys.executable, *module_args]


# --- configuration ------------------------------------------------------------------------


def bot_config(path: Path, *, db_url: str, port: int, graph_base: str,
               rate_per_second: float = 80.0, per_recipient_seconds: float = 3.0,
               processors: int = 0) -> Path:
    """A config for `python -m bot run`: WhatsApp on, pointed at the Graph stand-in.

    Quiet hours off and a high cap: the benches measure throughput, and the gate
    would otherwise hold announcements depending on the hour the bench runs.
    """
    text = f"""\
organization:
  name: Bench Civic Network
database:
  url: "{db_url}"
server:
  host: 127.0.0.1
  port: {port}
transports:
  testchat:
    enabled: false
  whatsapp:
    enabled: true
    phone_number_id: "{PHONE_NUMBER_ID}"
    access_token: "${{BENCH_WA_TOKEN}}"
    app_secret: "${{BENCH_WA_APP_SECRET}}"
    verify_token: "${{BENCH_WA_VERIFY_TOKEN}}"
    api_base_url: "{graph_base}"
    pacing:
      rate_per_second: {rate_per_second}
      per_recipient_seconds: {per_recipient_seconds}
      per_room_per_minute: 0
timezone: UTC
messaging:
  quiet_hours: "off"
  max_group_messages_per_day: 1000
groups:
  - code: riverside
    name: Riverside Neighbours
    area: Riverside
    description: The bench's group.
    timezone: UTC
security:
  key_env: GROUNDWORK_SECRET_KEY
  key_file: "{path.parent / 'secret.key'}"
workers:
  processors: {processors}
"""
    path.write_text(text, encoding="utf-8")
    return path


def sqlite_url(workdir: Path, name: str) -> str:
    return f"sqlite://{workdir / name}"


def pg_url(db: str = PG_BENCH_DB) -> str:
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    return f"{base}/{db}"


# --- databases ----------------------------------------------------------------------------


async def _pg_reset() -> None:
    import asyncpg

    admin = await asyncpg.connect(PG_ADMIN_URL.replace("postgres://", "postgresql://", 1))
    try:
        exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", PG_BENCH_DB)
        if not exists:
            await admin.execute(f'CREATE DATABASE "{PG_BENCH_DB}"')
    finally:
        await admin.close()
    conn = await asyncpg.connect(pg_url().replace("postgres://", "postgresql://", 1))
    try:
        await conn.execute("DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public;")
    finally:
        await conn.close()


def pg_reset() -> str | None:
    """Empty the bench database (created if missing); returns why not, if it cannot."""
    try:
        asyncio.run(_pg_reset())
    except Exception as exc:  # unreachable server, no rights: the PG rows say n/a
        return f"PostgreSQL at {PG_ADMIN_URL} unusable: {type(exc).__name__}: {exc}"
    return None


def query(db_url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Read the bot's database directly (sqlite3 / asyncpg), not through the ORM under test."""
    if db_url.startswith("sqlite://"):
        import sqlite3

        path = db_url[len("sqlite://"):].split("?", 1)[0]
        conn = sqlite3.connect(path, timeout=30)
        try:
            return [tuple(r) for r in conn.execute(sql.replace("$", "?"), params).fetchall()]
        finally:
            conn.close()

    async def fetch() -> list[tuple[Any, ...]]:
        import asyncpg

        conn = await asyncpg.connect(db_url.replace("postgres://", "postgresql://", 1))
        try:
            return [tuple(r) for r in await conn.fetch(sql, *params)]
        finally:
            await conn.close()

    return asyncio.run(fetch())


def as_datetime(value: Any) -> Any:
    """SQLite hands datetimes back as ISO text, asyncpg as datetime."""
    from datetime import datetime

    return datetime.fromisoformat(value) if isinstance(value, str) else value


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process and its running children (`bot run`'s processing
    children) have used so far, all threads, from /proc.

    Divided into work done, it gives a per-CPU-second figure that a busy machine
    disturbs far less than the wall-clock rate.
    """
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return math.nan
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return own + sum(cpu_seconds(child) for child in child_pids(pid))


def child_pids(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
    return found


# --- machine ------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        load = "unknown"
    return {"nproc": str(os.cpu_count()), "cpu": model,
            "python": platform.python_version(), "platform": platform.platform(),
            "loadavg": load}


class GraphHelper:
    """The Graph API stand-in in its own process (bench/graph.py), and its control calls."""

    def __init__(self, workdir: Path) -> None:
        port_file = workdir / f"graph-{time.monotonic_ns()}.port"
        self.proc = spawn(py("-m", "bench.graph", "--port-file", str(port_file)),
                          log=workdir / "graph.log")
        deadline = time.monotonic() + 30
        while not port_file.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                stop(self.proc)
                raise RuntimeError(f"the Graph stand-in did not start (see {workdir}/graph.log)")
            time.sleep(0.02)
        self.port = int(port_file.read_text())
        self.base_url = f"http://127.0.0.1:{self.port}/v23.0"

    def limit(self, rate: float | None) -> None:
        """limit_rate(rate) in the stand-in, and its counters back to zero."""
        value = "off" if rate is None else f"{rate:g}"
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/__bench/limit?rate={value}", method="POST")
        with urllib.request.urlopen(req, timeout=10):  # loopback only
            pass

    def stats(self) -> dict[str, Any]:
        data: dict[str, Any] = get_json(f"http://127.0.0.1:{self.port}/__bench/stats")
        return data

    def close(self) -> None:
        stop(self.proc, timeout=10)
