"""The CMS quarterly release zip, downloaded into the raw folder."""

from datetime import date

import dagster as dg
from pydantic import Field

from hcpcs.download import DownloadError, QuarterlyRelease, download_release
from pipelines.resources import HcpcsSettings


class CmsReleaseDownloadConfig(dg.Config):
    """Year and quarter of the file to download. Left empty, they are those of the run's date."""

    year: int | None = Field(default=None, description="Year of the release, such as 2026. Empty: the current year.")
    quarter: int | None = Field(
        default=None,
        description="Quarter of the release: 1, 2, 3 or 4 for the January, April, July or October file. "
        "Empty: the current quarter.",
    )

    def release(self, today: date) -> QuarterlyRelease:
        current = QuarterlyRelease.containing(today)
        return QuarterlyRelease(self.year or current.year, self.quarter or current.quarter)


@dg.asset(group_name="raw_release_files", kinds={"http", "zip"})
def cms_release_download(
    context: dg.AssetExecutionContext, config: CmsReleaseDownloadConfig, settings: HcpcsSettings
) -> dg.MaterializeResult:
    """One CMS quarterly 'Alpha-Numeric HCPCS File' zip, downloaded from CMS into the raw folder."""
    try:
        release = config.release(date.today())
        result = download_release(
            release,
            settings.raw_path,
            base_url=settings.download_base_url,
            file_pattern=settings.download_file_pattern,
            logger=context.log,
        )
    except DownloadError as error:
        raise dg.Failure(description=str(error)) from error

    context.log.info("%s file %s: %s (%d bytes)", release.label, result.status, result.path, result.bytes)
    return dg.MaterializeResult(
        metadata={
            "status": result.status,
            "release_id": result.release_id,
            "url": dg.MetadataValue.url(result.url),
            "final_url": dg.MetadataValue.url(result.final_url),
            "bytes": result.bytes,
            "sha256": result.sha256,
            "path": dg.MetadataValue.path(str(result.path)),
        }
    )
