"""The Dagster code location: assets, checks, jobs and resources of the HCPCS pipeline."""

import dagster as dg

from assets.releases import hcpcs_release_files, hcpcs_release_partitions, validated_hcpcs_release
from assets.warehouse import hcpcs_warehouse
from pipelines.resources import settings_from_environment

release_job = dg.define_asset_job(
    "hcpcs_release_job",
    selection=dg.AssetSelection.assets(hcpcs_release_files, validated_hcpcs_release),
    partitions_def=hcpcs_release_partitions,
    description="Read, validate and stage one CMS release (one partition).",
)

warehouse_job = dg.define_asset_job(
    "hcpcs_warehouse_job",
    selection=dg.AssetSelection.assets(hcpcs_warehouse),
    description="Rebuild the DuckDB warehouse from every staged release and swap it in.",
)

defs = dg.Definitions(
    assets=[hcpcs_release_files, validated_hcpcs_release, hcpcs_warehouse],
    jobs=[release_job, warehouse_job],
    resources={"settings": settings_from_environment()},
)
