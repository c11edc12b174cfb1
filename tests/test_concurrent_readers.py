"""A reader in another process keeps its view of the warehouse while a full refresh replaces it.

An analyst's process has a read-only DuckDB connection to the warehouse open. A release is
added and `python -m pipelines.build` rebuilds the warehouse. The refresh must succeed
while the connection stays open, the open connection must keep returning the old state,
and a new connection must return the new state.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cms_files import first_record, write_text

REPO_DIR = Path(__file__).resolve().parents[1]
COMMAND_TIMEOUT_SECONDS = 300
READER_REPLY_TIMEOUT_SECONDS = 60.0

# The reader writes one JSON line to stdout for each command it reads from stdin.
# "query" queries its open connection again, and "reconnect" closes it and opens a new one.
READER_SCRIPT = """\
import json
import sys

import duckdb

path = sys.argv[1]


def report(connection, event):
    release_ids = [row[0] for row in connection.execute(
        "SELECT release_id FROM dim_hcpcs_release ORDER BY release_id").fetchall()]
    [(records,)] = connection.execute("SELECT count(*) FROM hcpcs_release_record").fetchall()
    print(json.dumps({"event": event, "releases": len(release_ids), "release_ids": release_ids,
                      "records": records}), flush=True)


connection = duckdb.connect(path, read_only=True)
report(connection, "connected")
for line in sys.stdin:
    command = line.strip()
    if command == "query":
        report(connection, "queried")
    elif command == "reconnect":
        connection.close()
        connection = duckdb.connect(path, read_only=True)
        report(connection, "reconnected")
    else:
        break
connection.close()
"""


def write_release(raw_dir: Path, folder: str, file_name: str, codes: list[str]) -> None:
    write_text(raw_dir / folder / file_name, [first_record(code) for code in codes])


def build_env(raw_dir: Path, warehouse: Path) -> dict:
    """Environment of `python -m pipelines.build` with the test's paths and a temporary Dagster instance."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DAGSTER_", "HCPCS_"))}
    env.update(DAGSTER_DISABLE_TELEMETRY="1", HCPCS_RAW_DIR=str(raw_dir), HCPCS_WAREHOUSE=str(warehouse))
    return env


def run_build(raw_dir: Path, warehouse: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipelines.build"],
        cwd=REPO_DIR,
        env=build_env(raw_dir, warehouse),
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_SECONDS,
        check=False,
    )


def describe(result: subprocess.CompletedProcess) -> str:
    stderr = "\n".join(line for line in result.stderr.splitlines() if " - DEBUG - " not in line)
    return f"exit code {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{stderr[-4000:]}"


class Reader:
    """The reader subprocess, driven one command and one JSON reply at a time."""

    def __init__(self, script: Path, warehouse: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(script), str(warehouse)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def reply(self) -> dict:
        """Read the reader's next reply, failing when it exits or stays silent too long."""
        ready, _, _ = select.select([self.process.stdout], [], [], READER_REPLY_TIMEOUT_SECONDS)
        if not ready:
            pytest.fail(f"the reader sent no reply within {READER_REPLY_TIMEOUT_SECONDS:.0f} s")
        line = self.process.stdout.readline()
        if not line:
            self.process.wait(timeout=10)
            pytest.fail(f"the reader exited with code {self.process.returncode}: {self.process.stderr.read()}")
        return json.loads(line)

    def send(self, command: str) -> dict:
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return self.reply()

    def close(self) -> int:
        """Ask the reader to close its connection and exit, then return its exit code."""
        if self.process.poll() is None:
            try:
                self.process.stdin.write("exit\n")
                self.process.stdin.flush()
            except BrokenPipeError:
                pass
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(timeout=30)


@pytest.mark.slow
def test_reader_keeps_old_state_until_reconnect(tmp_path: Path) -> None:
    raw_dir = tmp_path / "raw"
    warehouse = tmp_path / "warehouse" / "hcpcs.duckdb"
    write_release(raw_dir, "2024-annual", "HCPC2024_JAN_ANWEB.txt", ["A0021", "A0080", "25"])
    write_release(raw_dir, "2024-APR", "HCPC2024_APR_ANWEB.txt", ["A0021", "A0080", "A0090", "25"])
    first_build = run_build(raw_dir, warehouse)
    assert first_build.returncode == 0, describe(first_build)

    script = tmp_path / "reader.py"
    script.write_text(READER_SCRIPT)
    reader = Reader(script, warehouse)
    try:
        before = reader.reply()
        assert before["event"] == "connected"
        assert before["release_ids"] == ["2024-01", "2024-04"]
        assert before["records"] == 7

        write_release(raw_dir, "2024-JUL", "HCPC2024_JUL_ANWEB.txt", ["A0021", "A0080", "A0090", "A0100", "25"])
        refresh = run_build(raw_dir, warehouse)
        assert refresh.returncode == 0, describe(refresh)
        assert "release 2024-07" in refresh.stdout
        assert f"warehouse written: {warehouse}" in refresh.stdout

        after_refresh = reader.send("query")
        assert after_refresh["releases"] == 2
        assert after_refresh["release_ids"] == ["2024-01", "2024-04"]
        assert after_refresh["records"] == 7

        after_reconnect = reader.send("reconnect")
        assert after_reconnect["releases"] == 3
        assert after_reconnect["release_ids"] == ["2024-01", "2024-04", "2024-07"]
        assert after_reconnect["records"] == 12
    finally:
        exit_code = reader.close()
    assert exit_code == 0, reader.process.stderr.read()
