"""The quarterly schedule that downloads the new CMS release file.

How a new quarter reaches the warehouse:

1. `hcpcs_quarterly_download_schedule` runs `hcpcs_download_job` at 06:00 UTC on each of the
   first seven days of January, April, July and October. Its run downloads that quarter's
   'Alpha-Numeric HCPCS File' zip into the raw folder (`cms_release_download`). While CMS has
   not posted the file, the run fails with "CMS has not published ..." and the next day's run
   tries again. Once the file is in the raw folder, later runs find it already present and
   change nothing, unless CMS has changed the file.
2. `hcpcs_raw_folder_sensor` (pipelines/sensors.py) finds a release with a new content hash,
   adds its partition and requests one `hcpcs_release_job` run, which validates and stages it.
3. `hcpcs_warehouse_rebuild_sensor` reads that the release run succeeded and requests one
   `hcpcs_warehouse_job` run, which rebuilds the DuckDB warehouse from every staged release.

Both sensors start stopped: turn them on in the Dagster UI, or the chain stops after step 1.
"""

from datetime import date

import dagster as dg

from assets.download import CmsReleaseDownloadConfig, cms_release_download

DOWNLOAD_CRON = "0 6 1-7 1,4,7,10 *"

hcpcs_download_job = dg.define_asset_job(
    "hcpcs_download_job",
    selection=dg.AssetSelection.assets(cms_release_download),
    description="Download one quarterly CMS 'Alpha-Numeric HCPCS File' zip into the raw folder.",
)


@dg.schedule(job=hcpcs_download_job, cron_schedule=DOWNLOAD_CRON, execution_timezone="UTC")
def hcpcs_quarterly_download_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """Download the file of the quarter that the tick falls in."""
    scheduled = context.scheduled_execution_time
    day = scheduled.date() if scheduled else date.today()
    release = CmsReleaseDownloadConfig().release(day)
    return dg.RunRequest(
        run_config=dg.RunConfig(
            ops={"cms_release_download": CmsReleaseDownloadConfig(year=release.year, quarter=release.quarter)}
        ),
        tags={"hcpcs/release": f"{release.year}-Q{release.quarter}"},
    )
