"""The Dagster code location: assets, checks, jobs, schedules, sensors and resources of the HCPCS pipeline."""

import dagster as dg

from assets.download import cms_release_download
from assets.releases import hcpcs_release_files, validated_hcpcs_release
from assets.warehouse import hcpcs_warehouse
from pipelines.resources import settings_from_environment
from pipelines.schedules import hcpcs_download_job, hcpcs_quarterly_download_schedule
from pipelines.sensors import hcpcs_raw_folder_sensor, hcpcs_warehouse_rebuild_sensor

release_job = dg.define_asset_job(
    "hcpcs_release_job",
    selection=dg.AssetSelection.assets(hcpcs_release_files, validated_hcpcs_release),
    description="Read, validate and stage one CMS release (one partition).",
)

warehouse_job = dg.define_asset_job(
    "hcpcs_warehouse_job",
    selection=dg.AssetSelection.assets(hcpcs_warehouse),
    description="Rebuild the DuckDB warehouse from every staged release and swap it in.",
)

defs = dg.Definitions(
    assets=[cms_release_download, hcpcs_release_files, validated_hcpcs_release, hcpcs_warehouse],
    jobs=[release_job, warehouse_job, hcpcs_download_job],
    schedules=[hcpcs_quarterly_download_schedule],
    sensors=[hcpcs_raw_folder_sensor, hcpcs_warehouse_rebuild_sensor],
    resources={"settings": settings_from_environment()},
)
