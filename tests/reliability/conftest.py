"""Fixtures of the reliability tests, and the record ledger printed at the end of the run."""

from pathlib import Path

import pytest

from tests.reliability.case_runner import CaseRunner
from tests.reliability.support import LEDGER, RAW_CHECKS, SCALE, Sandbox


@pytest.fixture
def sandbox(tmp_path: Path):
    """Create a fresh sandbox, and kill its child processes still running at the end of the test."""
    box = Sandbox(tmp_path / "sandbox").create()
    yield box
    box.kill_all()


@pytest.fixture(scope="session")
def case_runner():
    """One worker process shared by the fuzzing and hostile input tests."""
    with CaseRunner() as runner:
        yield runner


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not LEDGER and not RAW_CHECKS["comparisons"]:
        return
    expected = sum(entry.expected for entry in LEDGER)
    loaded = sum(entry.loaded for entry in LEDGER)
    terminalreporter.section("reliability record ledger")
    terminalreporter.write_line(
        f"HCPCS_RELIABILITY_SCALE={SCALE}: {len(LEDGER)} scenarios, {expected} records expected, "
        f"{loaded} loaded, {expected - loaded} lost"
    )
    for entry in LEDGER:
        if entry.lost:
            terminalreporter.write_line(f"  {entry.scenario}: {entry.expected} expected, {entry.loaded} loaded")
    terminalreporter.write_line(
        f"raw folder checksums compared before and after {RAW_CHECKS['comparisons']} runs "
        f"({RAW_CHECKS['files']} file checks), and a change fails the test that made it"
    )
