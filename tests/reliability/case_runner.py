"""Load a raw folder in a worker process with a time limit, for the fuzzing and hostile input tests.

A case is a raw folder the test has written. The worker runs what a refresh runs on it,
`discover_releases` and then `load_release` for every release, and reports one outcome:

- `loaded`: every release loaded. `lines_read` and `lines_accounted` give the line accounting.
- `rejected`: an HcpcsError was raised, and `detail` is its message.
- `crashed`: another exception was raised or the worker died, and `detail` is the traceback.
- `hung`: no outcome within the time limit. The worker is killed and a new one started.
"""

from __future__ import annotations

import multiprocessing
import traceback
from dataclasses import dataclass
from pathlib import Path

# Generous on purpose: a case takes well under a second, so only a hang reaches this.
CASE_TIME_LIMIT_SECONDS = 20.0
WORKER_START_LIMIT_SECONDS = 120.0


@dataclass
class CaseOutcome:
    """What loading one raw folder ended with."""

    kind: str
    detail: str = ""
    records_loaded: int = 0
    lines_read: int = 0
    lines_accounted: int = 0
    error_type: str = ""

    @property
    def reconciled(self) -> bool:
        return self.lines_read == self.lines_accounted


def load_raw_folder(raw_dir: str) -> CaseOutcome:
    from hcpcs.errors import HcpcsError
    from hcpcs.releases import discover_releases
    from hcpcs.stage import load_release

    try:
        staged = [load_release(release, "fuzz") for release in discover_releases(Path(raw_dir))]
    except HcpcsError as error:
        return CaseOutcome("rejected", str(error), error_type=type(error).__name__)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as error:  # polars reports Rust panics as a BaseException subclass
        return CaseOutcome("crashed", "".join(traceback.format_exception(error))[-3000:], error_type=type(error).__name__)

    outcome = CaseOutcome("loaded")
    for item in staged:
        summary = item.summary
        outcome.records_loaded += summary["records_loaded"]
        outcome.lines_read += summary["lines_read"]
        outcome.lines_accounted += (
            summary["records_loaded"] + summary["continuation_lines"] + summary["header_lines"] + summary["rejected_lines"]
        )
    return outcome


def serve(connection) -> None:
    """Worker loop: load each raw folder sent until None arrives."""
    import hcpcs.stage  # noqa: F401  imported before "ready", so the first case's time limit holds

    connection.send("ready")
    while True:
        raw_dir = connection.recv()
        if raw_dir is None:
            return
        connection.send(load_raw_folder(raw_dir))


class CaseRunner:
    """A worker process that loads raw folders, one at a time, each within a time limit."""

    def __init__(self, time_limit: float = CASE_TIME_LIMIT_SECONDS) -> None:
        self.time_limit = time_limit
        # spawn, not fork: polars and DuckDB keep thread pools that a fork does not copy safely.
        self.context = multiprocessing.get_context("spawn")
        self.process = None
        self.connection = None

    def __enter__(self) -> "CaseRunner":
        self._start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop()

    def _start(self) -> None:
        self.connection, worker_end = self.context.Pipe()
        self.process = self.context.Process(target=serve, args=(worker_end,), daemon=True)
        self.process.start()
        worker_end.close()
        if not self.connection.poll(WORKER_START_LIMIT_SECONDS):
            self._stop()
            raise RuntimeError(f"case worker did not start within {WORKER_START_LIMIT_SECONDS} s")
        assert self.connection.recv() == "ready"

    def _stop(self) -> None:
        if self.process is None:
            return
        if self.process.is_alive():
            try:
                self.connection.send(None)
            except (BrokenPipeError, OSError):
                pass
            self.process.join(5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.connection.close()
        self.process = None

    def run(self, raw_dir: Path, time_limit: float | None = None) -> CaseOutcome:
        """Load `raw_dir` in the worker and return its outcome within the time limit."""
        limit = self.time_limit if time_limit is None else time_limit
        self.connection.send(str(raw_dir))
        if self.connection.poll(limit):
            try:
                return self.connection.recv()
            except EOFError:
                self.process.join(5)
                exit_code = self.process.exitcode
                self._stop()
                self._start()
                return CaseOutcome("crashed", f"worker process died with exit code {exit_code}", error_type="died")
        self.process.kill()
        self.process.join()
        self._stop()
        self._start()
        return CaseOutcome("hung", f"no outcome within {limit:.0f} s")
