"""End-to-end test of the Dagster webserver serving workspace.yaml, read through its GraphQL API.

The test starts `dagster-webserver -w workspace.yaml` as a subprocess on 127.0.0.1. That is
the webserver of `make ui` without the daemon, so no schedule or sensor runs. It checks that
the server lists every asset, asset check, job, schedule and sensor of
`pipelines.definitions.defs`. The expected names come from `defs` itself, so the test
follows the code location as definitions are added.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tools.processes import stop_process_group

REPO_DIR = Path(__file__).resolve().parents[1]
WEBSERVER = Path(sys.executable).with_name("dagster-webserver")
SERVER_START_TIMEOUT_SECONDS = 90.0
SERVER_STOP_TIMEOUT_SECONDS = 30.0

# The webserver would otherwise upload telemetry to telemetry.dagster.io.
INSTANCE_CONFIG = "telemetry:\n  enabled: false\n"

LOCATION_STATUS_QUERY = """
query LocationStatus {
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError {
          __typename
          ... on PythonError { message }
        }
      }
    }
    ... on PythonError { message }
  }
}
"""

REPOSITORY_QUERY = """
query RepositoryContents {
  repositoriesOrError {
    __typename
    ... on RepositoryConnection {
      nodes {
        name
        jobs { name }
        schedules { name }
        sensors { name }
        assetNodes {
          assetKey { path }
          groupName
          assetChecksOrError {
            __typename
            ... on AssetChecks { checks { name } }
          }
        }
      }
    }
    ... on PythonError { message }
  }
}
"""


@dataclass
class Webserver:
    url: str
    log_path: Path

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def free_port() -> int:
    """Return a TCP port of 127.0.0.1 that no process listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def graphql(url: str, query: str, timeout: float = 30.0) -> dict:
    """POST one GraphQL query and return its `data`, failing on GraphQL errors."""
    request = urllib.request.Request(
        f"{url}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        body = json.load(response)
    assert not body.get("errors"), body["errors"]
    return body["data"]


def wait_until_loaded(server: Webserver, process: subprocess.Popen) -> None:
    """Wait until the server responds to GraphQL and its code location has loaded."""
    deadline = time.monotonic() + SERVER_START_TIMEOUT_SECONDS
    last_error = "no response yet"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(
                f"dagster-webserver exited with code {process.returncode} before it served "
                f"{server.url}. Last log lines:\n{server.log_tail()}"
            )
        try:
            workspace = graphql(server.url, LOCATION_STATUS_QUERY, timeout=5.0)["workspaceOrError"]
        except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
            last_error = str(error)
        else:
            entries = workspace.get("locationEntries") or []
            if entries and all(entry["loadStatus"] == "LOADED" for entry in entries):
                return
            last_error = f"code locations not loaded yet: {entries or workspace}"
        time.sleep(0.5)
    pytest.fail(
        f"dagster-webserver did not load the workspace within {SERVER_START_TIMEOUT_SECONDS:.0f} s "
        f"({last_error}). Last log lines:\n{server.log_tail()}"
    )


@pytest.fixture(scope="module")
def webserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Webserver]:
    """A dagster-webserver on a free port of 127.0.0.1, with its own DAGSTER_HOME and data paths."""
    base = tmp_path_factory.mktemp("webserver")
    dagster_home = base / "dagster_home"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text(INSTANCE_CONFIG)
    (base / "raw").mkdir()

    # Inherited DAGSTER_* and HCPCS_* settings (`make test` exports DAGSTER_HOME) would point
    # the server at the developer's own instance and data.
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DAGSTER_", "HCPCS_"))}
    env.update(
        DAGSTER_HOME=str(dagster_home),
        DAGSTER_DISABLE_TELEMETRY="1",
        HCPCS_RAW_DIR=str(base / "raw"),
        HCPCS_WAREHOUSE=str(base / "warehouse" / "hcpcs.duckdb"),
    )
    port = free_port()
    server = Webserver(url=f"http://127.0.0.1:{port}", log_path=base / "webserver.log")
    command = [str(WEBSERVER), "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)]

    with open(server.log_path, "wb") as log:
        process = subprocess.Popen(
            command, cwd=REPO_DIR, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_until_loaded(server, process)
        yield server
    finally:
        stop_process_group(process, SERVER_STOP_TIMEOUT_SECONDS)


@pytest.fixture(scope="module")
def served_repository(webserver: Webserver) -> dict:
    """The one repository that the webserver lists, as GraphQL returns it."""
    repositories = graphql(webserver.url, REPOSITORY_QUERY)["repositoriesOrError"]
    assert repositories["__typename"] == "RepositoryConnection", repositories
    assert len(repositories["nodes"]) == 1, [node["name"] for node in repositories["nodes"]]
    return repositories["nodes"][0]


def expected_definitions() -> dict[str, set]:
    """Names of everything that `pipelines.definitions.defs` defines, by kind."""
    from pipelines.definitions import defs

    repository = defs.get_repository_def()
    check_keys = defs.resolve_asset_graph().asset_check_keys
    return {
        "assets": {key.to_user_string() for key in defs.resolve_all_asset_keys()},
        "asset_checks": {(key.asset_key.to_user_string(), key.name) for key in check_keys},
        "jobs": {job.name for job in defs.resolve_all_job_defs()},
        "schedules": {schedule.name for schedule in repository.schedule_defs},
        "sensors": {sensor.name for sensor in repository.sensor_defs},
    }


def served_definitions(repository: dict) -> dict[str, set]:
    """Names of everything in the served repository, by kind, in the shape of expected_definitions."""
    asset_checks = set()
    for node in repository["assetNodes"]:
        key = "/".join(node["assetKey"]["path"])
        checks = node["assetChecksOrError"]
        assert checks["__typename"] == "AssetChecks", f"{key}: {checks}"
        asset_checks.update((key, check["name"]) for check in checks["checks"])
    return {
        "assets": {"/".join(node["assetKey"]["path"]) for node in repository["assetNodes"]},
        "asset_checks": asset_checks,
        "jobs": {job["name"] for job in repository["jobs"]},
        "schedules": {schedule["name"] for schedule in repository["schedules"]},
        "sensors": {sensor["name"] for sensor in repository["sensors"]},
    }


@pytest.mark.slow
def test_webserver_location_loads_without_error(webserver: Webserver) -> None:
    workspace = graphql(webserver.url, LOCATION_STATUS_QUERY)["workspaceOrError"]

    assert workspace["__typename"] == "Workspace", workspace
    entries = workspace["locationEntries"]
    assert [entry["name"] for entry in entries] == ["pipelines.definitions"]
    assert entries[0]["locationOrLoadError"]["__typename"] == "RepositoryLocation", entries[0]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["assets", "asset_checks", "jobs", "schedules", "sensors"])
def test_webserver_lists_every_definition(served_repository: dict, kind: str) -> None:
    expected = expected_definitions()[kind]
    served = served_definitions(served_repository)[kind]

    missing = expected - served
    assert not missing, f"{kind} defined in pipelines.definitions but not served: {sorted(missing)}"


@pytest.mark.slow
def test_webserver_asset_groups_match_definitions(served_repository: dict) -> None:
    from pipelines.definitions import defs

    expected = {spec.key.to_user_string(): spec.group_name for spec in defs.resolve_all_asset_specs()}
    served = {"/".join(node["assetKey"]["path"]): node["groupName"] for node in served_repository["assetNodes"]}

    assert served == expected
