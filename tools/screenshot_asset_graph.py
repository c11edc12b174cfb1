"""Save a screenshot of the Dagster asset graph to docs/images/asset-graph.png.

The script starts `dagster-webserver` for workspace.yaml on a free port of 127.0.0.1, with
a temporary DAGSTER_HOME, and opens the global asset lineage page in headless Chromium
with every asset group expanded. When the warehouse file is missing, it first builds it
from the raw folder with `python -m pipelines.build` in that temporary instance, so the
graph shows the assets as materialized. An existing warehouse is left as it is, and its
assets then show as never materialized, because the temporary instance has no runs.

Chromium is not a project dependency. On Debian, install it with `apt-get install chromium`.
Chromium resolves no host name other than 127.0.0.1, and Dagster telemetry is turned off.

Usage:
    make screenshot
    python tools/screenshot_asset_graph.py [--raw-dir DIR] [--warehouse FILE] [--output PNG]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_DIR))

from pipelines.resources import settings_from_environment  # noqa: E402
from tools.processes import stop_process_group  # noqa: E402

DEFAULT_OUTPUT = REPO_DIR / "docs" / "images" / "asset-graph.png"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
SERVER_START_TIMEOUT_SECONDS = 90.0
SERVER_STOP_TIMEOUT_SECONDS = 30.0
CHROMIUM_TIMEOUT_SECONDS = 120.0

# The UI zooms the graph to fit the window's width, so a window too short for the graph cuts
# off its top and bottom. 1920 x 1400 fits the whole expanded graph at the zoom that shows
# each asset's details.
DEFAULT_WINDOW_SIZE = "1920,1400"

# Virtual time in ms that Chromium gives the page before it takes the screenshot. It was
# enough for the dagster-webserver 1.13.27 UI to load, query GraphQL and lay out the graph.
VIRTUAL_TIME_BUDGET_MS = 15000

# Dagster would otherwise upload telemetry to telemetry.dagster.io, and its sign-up dialog
# would cover the graph.
INSTANCE_CONFIG = "telemetry:\n  enabled: false\nnux:\n  enabled: false\n"

LOCATION_STATUS_QUERY = "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }"
ASSET_GROUPS_QUERY = """
{
  repositoriesOrError {
    ... on RepositoryConnection {
      nodes { name location { name } assetGroups { groupName } }
    }
    ... on PythonError { message }
  }
}
"""


class ScreenshotError(Exception):
    """A step of taking the screenshot failed. The message names the step and what to do next."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    settings = settings_from_environment()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--raw-dir",
        type=Path,
        default=settings.raw_path,
        help="folder of CMS releases to build a missing warehouse from (default: HCPCS_RAW_DIR or %(default)s)",
    )
    parser.add_argument(
        "--warehouse",
        type=Path,
        default=settings.warehouse,
        help="warehouse file that the webserver reads, built first when missing "
        "(default: HCPCS_WAREHOUSE or %(default)s)",
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="PNG file to write (default: %(default)s)")
    parser.add_argument("--chromium", help="Chromium executable (default: the first of %s on PATH)" % ", ".join(
        CHROMIUM_NAMES))
    parser.add_argument(
        "--window-size", default=DEFAULT_WINDOW_SIZE, help="browser window WIDTH,HEIGHT in pixels (default: %(default)s)"
    )
    return parser.parse_args(argv)


def repo_path(path: Path) -> Path:
    """Resolve a relative path against the repository, where `make` and the pipeline resolve it."""
    return path if path.is_absolute() else REPO_DIR / path


def find_chromium(requested: str | None) -> str:
    candidates = [requested] if requested else list(CHROMIUM_NAMES)
    for name in candidates:
        found = shutil.which(name)
        if found:
            return found
    raise ScreenshotError(
        f"Chromium not found (looked for {', '.join(candidates)}). Install it, for example with "
        "`apt-get install chromium` on Debian, or pass --chromium PATH."
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def pipeline_env(raw_dir: Path, warehouse: Path, dagster_home: Path) -> dict[str, str]:
    """Environment for the build and the webserver: the temporary instance and the chosen paths."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("DAGSTER_")}
    env.update(
        DAGSTER_HOME=str(dagster_home),
        DAGSTER_DISABLE_TELEMETRY="1",
        HCPCS_RAW_DIR=str(raw_dir),
        HCPCS_WAREHOUSE=str(warehouse),
    )
    return env


def build_warehouse(env: dict[str, str], warehouse: Path) -> None:
    print(f"Warehouse {warehouse} not found; building it from {env['HCPCS_RAW_DIR']}", flush=True)
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.build"], cwd=REPO_DIR, env=env, capture_output=True, text=True, check=False
    )
    print(result.stdout, end="", flush=True)
    if result.returncode != 0:
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        raise ScreenshotError(
            f"Building the warehouse failed with exit code {result.returncode}:\n"
            + "\n".join(errors or result.stderr.splitlines()[-20:])
        )


def graphql(url: str, query: str, timeout: float = 10.0) -> dict:
    request = urllib.request.Request(
        f"{url}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        body = json.load(response)
    if body.get("errors"):
        raise ScreenshotError(f"GraphQL query to {url} failed: {body['errors']}")
    return body["data"]


def wait_until_loaded(url: str, process: subprocess.Popen, log_path: Path) -> None:
    """Wait until the webserver responds to GraphQL and has loaded every code location."""
    deadline = time.monotonic() + SERVER_START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ScreenshotError(
                f"dagster-webserver exited with code {process.returncode}. Its log:\n{log_path.read_text()[-4000:]}"
            )
        try:
            entries = graphql(url, LOCATION_STATUS_QUERY, timeout=5.0)["workspaceOrError"].get("locationEntries")
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            entries = None
        if entries and all(entry["loadStatus"] == "LOADED" for entry in entries):
            return
        time.sleep(0.5)
    raise ScreenshotError(
        f"dagster-webserver did not load the workspace within {SERVER_START_TIMEOUT_SECONDS:.0f} s. "
        f"Its log:\n{log_path.read_text()[-4000:]}"
    )


def expanded_group_ids(url: str) -> list[str]:
    """Return the UI's ids of every asset group, to open them all in the graph.

    The UI names a group `global@global:<group>`, or `<repository>@<location>:<group>` when
    its flag for groups per code location is on (`groupIdForNode` in ui-core's
    asset-graph/Utils.tsx, dagster-webserver 1.13.27). Both forms are listed, and the UI
    ignores ids that match no group.
    """
    repositories = graphql(url, ASSET_GROUPS_QUERY)["repositoriesOrError"]
    if "nodes" not in repositories:
        raise ScreenshotError(f"The webserver could not list the asset groups: {repositories}")
    ids = []
    for repository in repositories["nodes"]:
        for group in repository["assetGroups"]:
            name = group["groupName"]
            ids.append(f"global@global:{name}")
            ids.append(f"{repository['name']}@{repository['location']['name']}:{name}")
    return ids


def take_screenshot(chromium: str, page_url: str, output: Path, window_size: str, profile_dir: Path) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    output.unlink(missing_ok=True)
    command = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        # Every host name except 127.0.0.1 fails to resolve, so the page cannot reach the internet.
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
        f"--user-data-dir={profile_dir}",
        f"--window-size={window_size}",
        f"--virtual-time-budget={VIRTUAL_TIME_BUDGET_MS}",
        f"--screenshot={output}",
        page_url,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=CHROMIUM_TIMEOUT_SECONDS, check=False)
    if result.returncode != 0 or not output.exists():
        raise ScreenshotError(
            f"Chromium exited with code {result.returncode} and wrote no {output}:\n{result.stderr[-4000:]}"
        )


def png_size(path: Path) -> tuple[int, int]:
    """Return the width and height stored in a PNG file's IHDR chunk."""
    header = path.read_bytes()[:24]
    if header[:8] != b"\x89PNG\r\n\x1a\n":
        raise ScreenshotError(f"{path} is not a PNG file")
    return struct.unpack(">II", header[16:24])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    raw_dir = repo_path(args.raw_dir)
    warehouse = repo_path(args.warehouse)
    output = args.output.resolve()

    try:
        chromium = find_chromium(args.chromium)
        with tempfile.TemporaryDirectory(prefix="hcpcs-screenshot-") as scratch:
            scratch_dir = Path(scratch)
            dagster_home = scratch_dir / "dagster_home"
            dagster_home.mkdir()
            (dagster_home / "dagster.yaml").write_text(INSTANCE_CONFIG)
            env = pipeline_env(raw_dir, warehouse, dagster_home)

            if not warehouse.exists():
                build_warehouse(env, warehouse)

            url = f"http://127.0.0.1:{free_port()}"
            log_path = scratch_dir / "webserver.log"
            webserver = Path(sys.executable).with_name("dagster-webserver")
            command = [str(webserver), "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", url.rsplit(":", 1)[1]]
            print(f"Starting dagster-webserver on {url}", flush=True)
            with open(log_path, "wb") as log:
                process = subprocess.Popen(
                    command, cwd=REPO_DIR, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                )
            try:
                wait_until_loaded(url, process, log_path)
                query = urllib.parse.urlencode({"expanded": ",".join(expanded_group_ids(url))})
                page_url = f"{url}/asset-groups?{query}"
                print(f"Opening {page_url} in {chromium}", flush=True)
                take_screenshot(chromium, page_url, output, args.window_size, scratch_dir / "chromium-profile")
            finally:
                stop_process_group(process, SERVER_STOP_TIMEOUT_SECONDS)
                print("Stopped dagster-webserver", flush=True)
    except ScreenshotError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1

    width, height = png_size(output)
    print(f"Saved {output} ({width} x {height} pixels, {output.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
