"""A description of the machine and software a benchmark ran on, read from /proc, the interpreter and git."""

import os
import platform
import subprocess
from datetime import datetime, timezone
from importlib import metadata

from bench.measure import REPO_DIR

LIBRARIES = ("polars", "duckdb", "dagster", "pandera", "fastexcel", "pyarrow", "pandas", "openpyxl", "numpy")


def _cpuinfo() -> dict[str, str]:
    facts: dict[str, str] = {}
    processors = 0
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "processor":
                    processors += 1
                elif key in ("model name", "cpu MHz", "cache size") and key not in facts:
                    facts[key] = value.strip()
    except OSError:
        pass
    facts["logical processors"] = str(processors or os.cpu_count())
    return facts


def _memory_total() -> str:
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def _os_name() -> str:
    try:
        with open("/etc/os-release") as release:
            for line in release:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return platform.system()


def _git(*args: str) -> str:
    try:
        completed = subprocess.run(["git", *args], cwd=REPO_DIR, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return completed.stdout.strip() if completed.returncode == 0 else ""


def describe_machine() -> dict:
    """Return CPU, memory, OS, Python, library versions, git commit and the time, as plain values."""
    import polars as pl

    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    changed = _git("status", "--porcelain", "--", "hcpcs", "assets", "pipelines", "schemas")
    return {
        "cpu": _cpuinfo(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "memory": _memory_total(),
        "os": _os_name(),
        "kernel": platform.release(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "libraries": versions,
        "polars_threads": pl.thread_pool_size(),
        "commit": _git("rev-parse", "--short", "HEAD"),
        "product_code_modified": bool(changed),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def load_average() -> tuple[float, float, float]:
    return os.getloadavg()
