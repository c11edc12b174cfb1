"""Dagster assets: what the data is, from CMS release files to warehouse tables."""
