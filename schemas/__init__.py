"""pandera models (polars backend): what valid CMS records and warehouse rows are."""
