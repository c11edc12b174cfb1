"""Timing and memory helpers: medians of repeated calls, child processes with their peak memory."""

import gc
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

REPO_DIR = Path(__file__).resolve().parents[1]


@dataclass
class Timing:
    """Wall-clock seconds of repeated runs of one piece of work."""

    samples: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def low(self) -> float:
        return min(self.samples)

    @property
    def high(self) -> float:
        return max(self.samples)

    def to_dict(self) -> dict:
        return {"median": self.median, "min": self.low, "max": self.high, "samples": self.samples}


def time_call(function: Callable[[], object], repeats: int, warmup: int = 1) -> tuple[Timing, object]:
    """Run `function` `warmup` times untimed, then `repeats` times timed; return the timing and the last result.

    The warm-up run keeps one-time costs out of the median: lazy imports, pandera building
    its schema, regular expressions compiled on first use.
    """
    result = None
    for _ in range(warmup):
        result = function()
    timing = Timing()
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        result = function()
        timing.samples.append(time.perf_counter() - start)
    return timing, result


@dataclass
class ChildRun:
    """One finished child process: wall time, peak resident memory and its output."""

    seconds: float
    peak_rss_bytes: int
    returncode: int
    stdout: str
    stderr: str


class ChildFailedError(RuntimeError):
    """A child process of the benchmark exited with an error or ran past its time limit."""


def run_child(
    args: list[str],
    *,
    env: dict[str, str] | None = None,
    timeout_seconds: float = 900.0,
    check: bool = True,
) -> ChildRun:
    """Run `args` from the repository folder and return its wall time and peak RSS (ru_maxrss from wait4).

    The child's output goes to temporary files, not pipes, so that a chatty child (Dagster
    logs every event) never blocks on a full pipe while it is being timed.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        process = subprocess.Popen(args, cwd=REPO_DIR, env=env, stdout=out, stderr=err)
        deadline = start + timeout_seconds
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid == process.pid:
                break
            if time.perf_counter() > deadline:
                process.kill()
                process.wait()
                raise ChildFailedError(f"{' '.join(args)} timed out after {timeout_seconds:.0f} s")
            time.sleep(0.002)
        seconds = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        run = ChildRun(
            seconds=seconds,
            # Linux reports ru_maxrss in KiB.
            peak_rss_bytes=usage.ru_maxrss * 1024,
            returncode=process.returncode,
            stdout=out.read().decode(errors="replace"),
            stderr=err.read().decode(errors="replace"),
        )
    if check and run.returncode != 0:
        tail = "\n".join(run.stderr.strip().splitlines()[-15:])
        raise ChildFailedError(f"{' '.join(args)} failed with exit code {run.returncode}:\n{tail}")
    return run


def child_environment(**overrides: str) -> dict[str, str]:
    """Return the current environment with the repository first on PYTHONPATH, plus `overrides`.

    Child processes run whole builds and rebuilds as `make run` does, so they get its polars
    allocator setting (HCPCS_BENCH_ALLOCATOR, set by `make bench`) as _RJEM_MALLOC_CONF.
    """
    env = dict(os.environ)
    paths = [str(REPO_DIR)] + [path for path in env.get("PYTHONPATH", "").split(os.pathsep) if path]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    if env.get("HCPCS_BENCH_ALLOCATOR"):
        env["_RJEM_MALLOC_CONF"] = env["HCPCS_BENCH_ALLOCATOR"]
    env.update(overrides)
    return env


def python_command(*args: str) -> list[str]:
    return [sys.executable, *args]


# ---- peak memory inside a process ---------------------------------------------------------


def _status_kib(key: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{key} not found in /proc/self/status; peak memory is measured on Linux only")


def current_rss_bytes() -> int:
    return _status_kib("VmRSS") * 1024


def peak_rss_bytes() -> int:
    """Peak resident memory of this process (VmHWM) since start or since `reset_peak_rss`."""
    return _status_kib("VmHWM") * 1024


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux 4.0 and newer); return False where the kernel refuses."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return True
