"""cProfile summaries that name the project functions where a measured run spends its time."""

import cProfile
import pstats
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from bench.measure import REPO_DIR

# Project code whose time is reported; the benchmark's own modules are left out.
_PROJECT_FOLDERS = tuple(str(REPO_DIR / name) + "/" for name in ("hcpcs", "assets", "pipelines", "schemas"))


@dataclass
class Hotspot:
    """Time spent in one function per profiled run, with the library calls under it that took most of that time."""

    label: str
    seconds: float
    share: float
    callees: list[tuple[str, float]] = field(default_factory=list)

    def to_text(self) -> str:
        text = f"`{self.label}`: {_format_seconds(self.seconds)} per run ({self.share:.0%})"
        if self.callees:
            text += "; library calls: " + ", ".join(
                f"`{label}` {_format_seconds(seconds)}" for label, seconds in self.callees
            )
        return text


def _format_seconds(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _label(function: tuple[str, int, str]) -> str:
    """`hcpcs/readers.py:102 text_as_utf8` for project code, `polars/dataframe/frame.py select` for libraries."""
    filename, line, name = function
    if filename == "~":
        return name.strip("<>{}").replace("built-in method ", "").replace("method ", "")
    parts = Path(filename).parts
    if "site-packages" in parts:
        return f"{Path(*parts[parts.index('site-packages') + 1:])} {name}"
    if filename.startswith(str(REPO_DIR) + "/"):
        return f"{Path(filename).relative_to(REPO_DIR)}:{line} {name}"
    standard_library = [index for index, part in enumerate(parts) if part.startswith("python3")]
    if standard_library:
        return f"{Path(*parts[standard_library[-1] + 1:])} {name}"
    return f"{Path(filename).name} {name}"


def _is_project(function: tuple[str, int, str]) -> bool:
    return function[0].startswith(_PROJECT_FOLDERS)


def profile_calls(function: Callable[[], object], runs: int) -> pstats.Stats:
    """Run `function` `runs` times under cProfile and return the statistics."""
    profiler = cProfile.Profile()
    for _ in range(runs):
        profiler.enable()
        function()
        profiler.disable()
    return pstats.Stats(profiler)


def project_hotspots(stats: pstats.Stats, runs: int, top: int = 5, callees: int = 3) -> list[Hotspot]:
    """Rank project functions by the time spent in them and in the library calls they make directly.

    A function's time here is its cumulative time minus the time of the project functions it
    calls, so a helper such as `text_as_utf8` is charged for its own `bytes` method calls and its
    caller is not charged again. Shares are of the total profiled time.
    """
    table = stats.stats  # {function: (primitive calls, calls, self time, cumulative time, callers)}
    total = stats.total_tt or 1e-9
    project_time: dict[tuple, float] = {}
    library_callees: dict[tuple, dict[tuple, float]] = {}
    for function, (_, _, _, cumulative, _) in table.items():
        # A module body's time is the time of its imports, which the orchestration summary counts.
        if _is_project(function) and function[2] != "<module>":
            project_time[function] = cumulative
    for callee, (_, _, _, _, callers) in table.items():
        for caller, edge in callers.items():
            if caller not in project_time:
                continue
            edge_cumulative = edge[3]
            if _is_project(callee):
                project_time[caller] -= edge_cumulative
            else:
                library_callees.setdefault(caller, {})[callee] = edge_cumulative

    ranked = sorted(project_time.items(), key=lambda item: item[1], reverse=True)[:top]
    hotspots = []
    for function, seconds in ranked:
        calls = sorted(library_callees.get(function, {}).items(), key=lambda item: item[1], reverse=True)
        hotspots.append(
            Hotspot(
                label=_label(function),
                seconds=seconds / runs,
                share=seconds / total,
                # Calls under half a millisecond per run explain nothing and are left out.
                callees=[
                    (_label(callee), callee_seconds / runs)
                    for callee, callee_seconds in calls[:callees]
                    if callee_seconds / runs >= 0.0005
                ],
            )
        )
    return hotspots


# Functions of Dagster and of Python itself that account for the orchestration cost of a
# build: (label, file path fragment, function name). Matched loosely, so that a Dagster
# upgrade that moves one of them only drops that line from the summary.
_ORCHESTRATION_ANCHORS = (
    ("Python imports (first import of every module)", "<frozen importlib._bootstrap>", "_find_and_load"),
    ("Dagster runs launched (`dagster.materialize`)", "dagster/_core/definitions/materialize.py", "materialize"),
    ("Dagster event log writes (`DagsterInstance.handle_new_event`, SQLite)", "dagster/_core/instance",
     "handle_new_event"),
    ("Dagster compute-log capture (`LocalComputeLogManager.capture_logs`)", "local_compute_log_manager.py",
     "capture_logs"),
    ("Dagster partition look-ups (`DagsterInstance.has_dynamic_partition`)", "dagster/_core/instance/instance.py",
     "has_dynamic_partition"),
    ("Asset bodies: `hcpcs_release_files`", "assets/releases.py", "hcpcs_release_files"),
    ("Asset bodies: `validated_hcpcs_release`", "assets/releases.py", "validated_hcpcs_release"),
    ("Asset bodies: `hcpcs_warehouse`", "assets/warehouse.py", "hcpcs_warehouse"),
)


@dataclass
class Anchor:
    """Cumulative time of one named function over a whole profiled program."""

    label: str
    seconds: float
    calls: int


def orchestration_breakdown(stats: pstats.Stats) -> tuple[float, list[Anchor]]:
    """Return the profiled total and the cumulative time of the orchestration anchors that occur.

    The lines overlap: an import can happen inside a Dagster run, and the asset bodies run
    inside `materialize`.
    """
    anchors = []
    for label, path_fragment, name in _ORCHESTRATION_ANCHORS:
        seconds = 0.0
        calls = 0
        for (filename, _, function_name), (primitive, _, _, cumulative, _) in stats.stats.items():
            if function_name == name and path_fragment in filename:
                seconds += cumulative
                calls += primitive
        if calls:
            anchors.append(Anchor(label, seconds, calls))
    return stats.total_tt, anchors


def load_stats(path: Path) -> pstats.Stats:
    return pstats.Stats(str(path))
