"""The work of `python -m pipelines.build` done by plain function calls, without Dagster.

`python -m bench.plain_build --raw RAW --warehouse FILE` stages every release of RAW that is
not staged yet with the same content, then rebuilds the warehouse, calling the same project
functions as the assets `validated_hcpcs_release` and `hcpcs_warehouse` do. What the assets
do only for Dagster (materialization metadata, previews, asset check results, event logs) is
left out, so the difference in wall time between the two commands is what Dagster adds.
"""

import argparse
import sys
from pathlib import Path

from hcpcs.checks import undecoded_values, warehouse_invariants
from hcpcs.history import version_delta
from hcpcs.releases import discover_releases
from hcpcs.stage import load_release, read_staged, write_staged
from hcpcs.warehouse import assemble, read_versions, write_lock, write_warehouse

RUN_ID = "bench-plain-build"


def stage_new_releases(raw_dir: Path, staging_dir: Path) -> list[str]:
    """Load and stage each release whose content hash differs from its staged copy; return their ids."""
    loaded = []
    for release in discover_releases(raw_dir):
        earlier = read_staged(staging_dir, [release.release_id])
        if earlier and earlier[0].summary.get("content_hash") == release.content_hash():
            continue
        write_staged(load_release(release, RUN_ID), staging_dir)
        loaded.append(release.release_id)
    return loaded


def rebuild_warehouse(staging_dir: Path, warehouse_path: Path) -> int:
    """Assemble, check and write the warehouse from the staged releases; return the number of code versions."""
    tables, problems = assemble(read_staged(staging_dir))
    if problems:
        raise SystemExit("releases left out of the warehouse: " + " ".join(str(problem) for problem in problems))
    failed = [outcome.name for outcome in warehouse_invariants(tables) if not outcome.passed]
    if failed:
        raise SystemExit(f"warehouse checks failed: {', '.join(failed)}")
    undecoded_values(tables.versions, tables.notes)
    with write_lock(warehouse_path):
        version_delta(read_versions(warehouse_path), tables.versions)
        write_warehouse(tables, warehouse_path)
    return tables.versions.height


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw", type=Path, required=True, help="raw folder with one folder or zip per release")
    parser.add_argument("--warehouse", type=Path, required=True, help="DuckDB file to write; staging goes beside it")
    args = parser.parse_args(argv)

    staging_dir = args.warehouse.parent / "staging"
    loaded = stage_new_releases(args.raw, staging_dir)
    versions = rebuild_warehouse(staging_dir, args.warehouse)
    print(f"staged {len(loaded)} releases ({', '.join(loaded) or 'none'}); wrote {versions} code versions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
