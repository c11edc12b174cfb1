"""Shared fixtures: the real CMS releases under ../shared and a warehouse built from them."""

import os
from pathlib import Path

import pytest

REPO_DIR = Path(__file__).resolve().parents[1]
SHARED_RAW_DIR = REPO_DIR.parent / "shared" / "data" / "hcpcs" / "raw"
SHARED_REFERENCE_DIR = REPO_DIR.parent / "shared" / "reference"


def require_shared(path: Path) -> Path:
    """Return `path`; skip the test without it, but fail under CI=true, where it must exist."""
    if path.exists():
        return path
    reason = f"real CMS data not found at {path}; it sits beside the checkout in ../shared"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}, and CI=true requires it")
    pytest.skip(reason)


def dump_warehouse(path) -> dict[str, list]:
    """Read every table of a warehouse file, rows sorted, to compare two builds."""
    import duckdb

    connection = duckdb.connect(str(path), read_only=True)
    try:
        names = [row[0] for row in connection.execute("SELECT table_name FROM duckdb_tables() ORDER BY 1").fetchall()]
        return {name: connection.execute(f'SELECT * FROM "{name}" ORDER BY ALL').fetchall() for name in names}
    finally:
        connection.close()


@pytest.fixture(scope="session")
def shared_raw_dir() -> Path:
    return require_shared(SHARED_RAW_DIR)


@pytest.fixture(scope="session")
def real_build(shared_raw_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """Every shared release loaded and the warehouse built with the plain functions (no Dagster)."""
    from hcpcs.releases import discover_releases
    from hcpcs.stage import load_release, read_staged, write_staged
    from hcpcs.warehouse import build_warehouse

    base = tmp_path_factory.mktemp("real_warehouse")
    staging = base / "staging"
    for release in discover_releases(shared_raw_dir):
        write_staged(load_release(release, "test-run"), staging)
    staged = read_staged(staging)
    tables, problems = build_warehouse(staged, base / "hcpcs.duckdb")
    assert problems == []
    return staged, tables, base / "hcpcs.duckdb"


@pytest.fixture
def real_warehouse(real_build):
    """A read-only DuckDB connection to the warehouse built from the real releases."""
    import duckdb

    connection = duckdb.connect(str(real_build[2]), read_only=True)
    yield connection
    connection.close()
