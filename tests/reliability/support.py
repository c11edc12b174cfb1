"""Helpers for the reliability tests: sandboxes, child refresh processes, warehouse snapshots.

A sandbox is one temporary folder laid out like a user's machine: `raw/` (HCPCS_RAW_DIR),
`warehouse/` (the DuckDB file and `staging/`), and folders the product must never write to
(`outside/`, `work/` as the current directory, `tmp/` as TMPDIR).
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
from hypothesis import HealthCheck, settings

from tests.cms_files import first_record, write_text

REPO_DIR = Path(__file__).resolve().parents[2]
CHILD_SCRIPT = Path(__file__).with_name("refresh_child.py")
SCALE_VARIABLE = "HCPCS_RELIABILITY_SCALE"


def reliability_scale() -> int:
    """Return the size multiplier for slow tests from HCPCS_RELIABILITY_SCALE (default 1)."""
    text = os.environ.get(SCALE_VARIABLE, "").strip() or "1"
    try:
        scale = int(text)
    except ValueError:
        raise ValueError(f"{SCALE_VARIABLE}={text!r} is not an integer. Set it to 1 or more, such as 10.") from None
    if scale < 1:
        raise ValueError(f"{SCALE_VARIABLE}={scale} is less than 1. Set it to 1 or more, such as 10.")
    return scale


SCALE = reliability_scale()


def scaled(count: int) -> int:
    """Return `count` times HCPCS_RELIABILITY_SCALE: the number of cases a slow test runs."""
    return count * SCALE


# One hypothesis profile for every property test here. Tests set max_examples with
# `scaled(...)` on top of it, so HCPCS_RELIABILITY_SCALE=10 runs ten times the examples.
settings.register_profile(
    "hcpcs-reliability",
    deadline=None,
    max_examples=scaled(50),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
RELIABILITY_PROFILE = settings.get_profile("hcpcs-reliability")


# ---- record ledger ---------------------------------------------------------------------------


@dataclass
class LedgerEntry:
    """Records expected in and loaded by one scenario. The difference is the records lost."""

    scenario: str
    expected: int
    loaded: int

    @property
    def lost(self) -> int:
        return self.expected - self.loaded


LEDGER: list[LedgerEntry] = []
# Raw folder checksum comparisons made before and after runs: how many, and over how many files.
RAW_CHECKS = {"comparisons": 0, "files": 0}


def record_outcome(scenario: str, expected: int, loaded: int) -> int:
    """Add one scenario's record counts to the ledger and return the records lost (expected - loaded)."""
    entry = LedgerEntry(scenario, expected, loaded)
    LEDGER.append(entry)
    return entry.lost


# ---- sandboxes -------------------------------------------------------------------------------


@dataclass
class Sandbox:
    """A temporary folder laid out like a user's machine, with every child process it started."""

    root: Path
    children: list[subprocess.Popen] = field(default_factory=list)

    @property
    def raw(self) -> Path:
        return self.root / "raw"

    @property
    def warehouse_dir(self) -> Path:
        return self.root / "warehouse"

    @property
    def warehouse(self) -> Path:
        return self.warehouse_dir / "hcpcs.duckdb"

    @property
    def staging(self) -> Path:
        return self.warehouse_dir / "staging"

    @property
    def outside(self) -> Path:
        return self.root / "outside"

    @property
    def work(self) -> Path:
        return self.root / "work"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    def create(self) -> "Sandbox":
        for folder in (self.raw, self.warehouse_dir, self.outside, self.work, self.tmp):
            folder.mkdir(parents=True, exist_ok=True)
        # Files a path traversal would hit: ../outside/... from the raw or warehouse folder.
        (self.outside / "keep.txt").write_text("must stay unchanged\n")
        (self.outside / "HCPC2026_ANWEB.txt").write_text("must stay unchanged\n")
        return self

    def environment(self, **extra: str) -> dict[str, str]:
        """Return the environment of a child run: this sandbox's paths and no DAGSTER_HOME.

        `make test` exports DAGSTER_HOME for the repository. A child started with it would
        record its runs there, so it is removed unless a test sets it again in `extra`.
        """
        environment = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith(("HCPCS_", "RELIABILITY_", "DAGSTER_"))
        }
        environment.update(
            PYTHONPATH=str(REPO_DIR),
            HCPCS_RAW_DIR=str(self.raw),
            HCPCS_WAREHOUSE=str(self.warehouse),
            TMPDIR=str(self.tmp),
        )
        environment.update(extra)
        return environment

    def start(self, mode: str, **extra: str) -> subprocess.Popen:
        """Start `refresh_child.py mode` in this sandbox, with stdout and stderr captured."""
        process = subprocess.Popen(
            [sys.executable, str(CHILD_SCRIPT), mode],
            cwd=self.work,
            env=self.environment(**extra),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.children.append(process)
        return process

    def run(self, mode: str, timeout: float = 180, **extra: str) -> subprocess.CompletedProcess:
        """Run `refresh_child.py mode` to its end and check that no raw file changed."""
        before = raw_checksums(self.raw)
        process = self.start(mode, **extra)
        stdout, stderr = process.communicate(timeout=timeout)
        self.check_raw_unchanged(before)
        return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)

    def run_build_module(self, timeout: float = 180, **extra: str) -> subprocess.CompletedProcess:
        """Run `python -m pipelines.build` exactly as a user does, and check that no raw file changed."""
        before = raw_checksums(self.raw)
        completed = subprocess.run(
            [sys.executable, "-m", "pipelines.build"],
            cwd=self.work,
            env=self.environment(**extra),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        self.check_raw_unchanged(before)
        return completed

    def check_raw_unchanged(self, before: dict[str, tuple[int, str, int]]) -> None:
        assert_raw_unchanged(self.raw, before)

    def kill_all(self) -> None:
        """Kill the child processes this sandbox started that are still running."""
        for process in self.children:
            if process.poll() is None:
                process.kill()
            process.communicate()


def kill_at_marker(process: subprocess.Popen, marker: Path, timeout: float = 120) -> None:
    """Wait until the child creates `marker`, then SIGKILL it and wait for it to end."""
    wait_for_file(marker, process, timeout)
    os.kill(process.pid, signal.SIGKILL)
    process.communicate()
    assert process.returncode == -signal.SIGKILL


def wait_for_file(path: Path, process: subprocess.Popen, timeout: float) -> None:
    """Wait until `path` exists, and fail if the child ends first or the wait times out."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None:
            stdout, stderr = process.communicate()
            raise AssertionError(
                f"child ended with exit code {process.returncode} before creating {path.name}\n"
                f"stdout:\n{stdout}\nstderr:\n{stderr[-4000:]}"
            )
        if time.monotonic() > deadline:
            raise AssertionError(f"child did not create {path.name} within {timeout} s")
        time.sleep(0.01)


# ---- files and snapshots ---------------------------------------------------------------------


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def raw_checksums(raw_dir: Path) -> dict[str, tuple[int, str, int]]:
    """Return size, SHA-256 and modification time of every file under the raw folder, symlinks followed."""
    checksums = {}
    for folder, _, names in os.walk(raw_dir, followlinks=True):
        for name in names:
            path = Path(folder) / name
            if not path.is_file():
                continue
            status = path.stat()
            checksums[str(path.relative_to(raw_dir))] = (status.st_size, file_digest(path), status.st_mtime_ns)
    return checksums


def assert_raw_unchanged(raw_dir: Path, before: dict[str, tuple[int, str, int]]) -> None:
    """Fail if any file under the raw folder was added, removed or changed since `before`."""
    after = raw_checksums(raw_dir)
    RAW_CHECKS["comparisons"] += 1
    RAW_CHECKS["files"] += len(before)
    changed = sorted(name for name in before.keys() | after.keys() if before.get(name) != after.get(name))
    assert not changed, f"raw files changed by a run: {changed}"


def tree_snapshot(root: Path, skip: tuple[Path, ...] = ()) -> dict[str, str]:
    """Return every entry under `root` (except `skip` folders) with its kind and content hash."""
    snapshot = {}
    for folder, folders, names in os.walk(root):
        current = Path(folder)
        folders[:] = [name for name in folders if current / name not in skip]
        for name in folders + names:
            path = current / name
            relative = str(path.relative_to(root))
            if path.is_symlink():
                snapshot[relative] = f"symlink -> {os.readlink(path)}"
            elif path.is_dir():
                snapshot[relative] = "folder"
            elif path.is_file():
                snapshot[relative] = f"file {file_digest(path)}"
            else:
                snapshot[relative] = "other"
    return snapshot


def write_text_release(raw_dir: Path, folder: str, descriptions: dict[str, str], file_name: str | None = None) -> int:
    """Write one release folder holding an ANWEB text file with one first record per code.

    Returns the number of first records written, the records the release must load.
    """
    name = file_name or f"HCPC{folder[:4]}_ANWEB.txt"
    lines = [first_record(code, description) for code, description in descriptions.items()]
    write_text(raw_dir / folder / name, lines)
    return len(lines)


def building_files(warehouse: Path) -> list[str]:
    """Return the names of unfinished build files (`.hcpcs.duckdb.building-<pid>`) next to the warehouse."""
    return sorted(path.name for path in warehouse.parent.glob(f".{warehouse.name}.building-*"))


def warehouse_state(warehouse: Path) -> dict[str, tuple[int, str]]:
    """Return row count and content hash of every table, view and macro of a warehouse file.

    Opening the file read-only also proves that DuckDB can open it after a crash.
    """
    connection = duckdb.connect(str(warehouse), read_only=True)
    try:
        relations = [
            row[0]
            for row in connection.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' ORDER BY table_name"
            ).fetchall()
        ]
        state = {}
        for relation in relations:
            # Relation names come from the file's own catalog, never from test input.
            count, digest = connection.execute(
                f'SELECT count(*), md5(coalesce(string_agg(CAST(t AS VARCHAR), chr(10) '
                f'ORDER BY CAST(t AS VARCHAR)), \'\')) FROM "{relation}" t'
            ).fetchone()
            state[relation] = (count, digest)
        macros = connection.execute(
            "SELECT function_name FROM duckdb_functions() WHERE function_type = 'table_macro' AND NOT internal"
        ).fetchall()
        state["macros"] = (len(macros), ",".join(sorted(row[0] for row in macros)))
        return state
    finally:
        connection.close()


def loaded_record_count(warehouse: Path) -> int:
    connection = duckdb.connect(str(warehouse), read_only=True)
    try:
        return connection.execute("SELECT count(*) FROM hcpcs_release_record").fetchone()[0]
    finally:
        connection.close()
