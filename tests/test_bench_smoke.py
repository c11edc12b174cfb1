"""Smoke test of the benchmark script: a `--quick` run must finish and print the whole page.

It checks only that bench/run.py still works with the current project code. It asserts no
timing, because the numbers depend on the machine and on what else runs on it.
"""

import subprocess
import sys

import pytest

from tests.conftest import REPO_DIR, SHARED_RAW_DIR, require_shared

PAGE_SECTIONS = (
    "## Machine",
    "## Targets",
    "## Stages on one real release",
    "## Floors and common baselines",
    "## Builds",
    "## Synthetic history workload",
    "## Method",
)


@pytest.mark.real_data
@pytest.mark.slow
def test_bench_quick_run_prints_page():
    require_shared(SHARED_RAW_DIR)
    completed = subprocess.run(
        [sys.executable, "bench/run.py", "--quick", "--no-write", "--raw-dir", str(SHARED_RAW_DIR)],
        cwd=REPO_DIR,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert completed.returncode == 0, completed.stderr[-4000:]
    for section in PAGE_SECTIONS:
        assert section in completed.stdout, f"{section} missing from the page"
    targets = completed.stdout.split("## Targets")[1].split("\n## ")[0]
    for target in ("Full build", "One release added", "Synthetic history build", "Peak memory", "Time at 10×"):
        rows = [line for line in targets.splitlines() if line.startswith(f"| {target}")]
        assert len(rows) == 1, f"target row {target!r} missing"
        assert "not measured" not in rows[0], rows[0]
