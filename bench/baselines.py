"""Baselines for the same outputs, as a user would write them without this project: pandas, openpyxl, SCD2 merges.

Each baseline is the plain, commonly written approach, done with care (vectorized where
pandas offers it, parameters bound in SQL), and produces the same rows as the project
function it is compared with, so that only the approach differs. pandas and openpyxl come
from the `bench` optional dependencies.
"""

import io
import warnings
from datetime import date, datetime

import duckdb
import polars as pl

from hcpcs import layout
from hcpcs.history import CODE_VERSION_COLUMNS, OPEN_END
from hcpcs.normalize import BUSINESS_ATTRIBUTES, RELEASE_RECORD_COLUMNS

FIRST_RECORD_IDS = set(layout.FIRST_RECORD_IDS)
CONTINUATION_RECORD_IDS = set(layout.CONTINUATION_RECORD_IDS)


# ---- readers --------------------------------------------------------------------------------


def pandas_text_records(data: bytes):
    """Read the ANWEB text file with `pandas.read_fwf` and the CMS column positions.

    Keeps the lines whose record id is 3, 4, 7 or 8 (the disclaimer lines at the top have
    none), joins each code's description pieces in file order, and returns one row per
    first record.
    """
    import pandas as pd

    frame = pd.read_fwf(
        io.BytesIO(data),
        colspecs=[(field.start, field.end) for field in layout.FIELDS],
        names=list(layout.RAW_COLUMNS),
        dtype=str,
        encoding="cp1252",
        header=None,
        keep_default_na=False,
    )
    frame = frame[frame["recid"].isin(FIRST_RECORD_IDS | CONTINUATION_RECORD_IDS) & frame["seqnum"].str.isdigit()]
    descriptions = frame.groupby("hcpc", sort=False)["long_description"].agg(" ".join)
    first = frame[frame["recid"].isin(FIRST_RECORD_IDS)].copy()
    first["long_description"] = first["hcpc"].map(descriptions)
    return first.reset_index(drop=True)


def _cell_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y%m%d")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def openpyxl_workbook_records(data: bytes) -> list[dict[str, str]]:
    """Read the ANWEB workbook with openpyxl in read-only mode, one `iter_rows` pass.

    Skips the rows above the header row (the disclaimer), turns date cells into YYYYMMDD
    text, appends a continuation row's description to the record above it, and returns one
    dict per first record.
    """
    import openpyxl

    with warnings.catch_warnings():
        # Some CMS workbooks have a page header that openpyxl cannot parse; it warns and ignores it.
        warnings.filterwarnings("ignore", "Cannot parse header or footer", UserWarning)
        workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        try:
            return _workbook_records(workbook.worksheets[0].iter_rows(values_only=True))
        finally:
            workbook.close()


def _workbook_records(rows) -> list[dict[str, str]]:
    for row in rows:
        if row and _cell_text(row[0]).upper() == "HCPC":
            break
    records: list[dict[str, str]] = []
    for row in rows:
        values = [_cell_text(value) for value in row[: len(layout.RAW_COLUMNS)]]
        if not any(values):
            continue
        record = dict(zip(layout.RAW_COLUMNS, values))
        if record["recid"] in CONTINUATION_RECORD_IDS and records and records[-1]["hcpc"] == record["hcpc"]:
            records[-1]["long_description"] += " " + record["long_description"]
            continue
        records.append(record)
    return records


# ---- history merge, release by release -------------------------------------------------------

# Record columns that may change inside one version: everything but the business attributes.
_VERSION_LATEST_COLUMNS = [
    name for name in RELEASE_RECORD_COLUMNS if name not in BUSINESS_ATTRIBUTES and name not in ("release_id", "hcpcs_code")
]


def split_releases(statements: pl.DataFrame) -> list[tuple[str, date, pl.DataFrame]]:
    """Return (release id, effective date, records) per release, oldest first: the baselines' input."""
    releases = statements.select("release_id", "release_effective_date").unique().sort("release_effective_date")
    return [
        (release_id, effective, statements.filter(pl.col("release_id") == release_id).drop("release_effective_date"))
        for release_id, effective in releases.iter_rows()
    ]


def pandas_inputs(releases: list[tuple[str, date, pl.DataFrame]]):
    """Convert each release to pandas, as a pandas user would hold them, outside the timed merge."""
    return [(release_id, effective, records.to_pandas()) for release_id, effective, records in releases]


def _pandas_attribute_hash(frame):
    import pandas as pd

    keys = {}
    for name in BUSINESS_ATTRIBUTES:
        column = frame[name]
        if column.dtype == object and len(column) and not isinstance(column.dropna().iloc[0], str):
            keys[name] = column.map(lambda values: "\x1f".join(values) if values is not None else None)
        else:
            keys[name] = column.astype(str)
    return pd.util.hash_pandas_object(pd.DataFrame(keys), index=False)


def pandas_release_by_release(releases) -> pl.DataFrame:
    """Merge releases into SCD2 versions one release at a time with pandas.

    For each release: close the current version of every code whose attributes changed,
    update the current version of every unchanged code, and open a version for every new or
    changed code. `releases` is the output of `pandas_inputs`.
    """
    import pandas as pd

    dim = None
    for release_id, effective, frame in releases:
        incoming = frame.assign(attribute_hash=_pandas_attribute_hash(frame).to_numpy())
        if dim is None:
            opened = incoming.assign(version_number=1)
        else:
            current = dim[dim["is_current"]]
            merged = incoming.merge(
                current[["hcpcs_code", "attribute_hash", "version_number"]],
                on="hcpcs_code",
                how="left",
                suffixes=("", "_current"),
            )
            is_new = merged["version_number"].isna()
            is_changed = ~is_new & (merged["attribute_hash"] != merged["attribute_hash_current"])
            is_same = ~is_new & ~is_changed

            closing = dim["is_current"] & dim["hcpcs_code"].isin(merged.loc[is_changed, "hcpcs_code"])
            dim.loc[closing, "valid_to"] = effective
            dim.loc[closing, "is_current"] = False

            same = merged[is_same].set_index("hcpcs_code")
            extending = dim.index[dim["is_current"] & dim["hcpcs_code"].isin(same.index)]
            codes = dim.loc[extending, "hcpcs_code"]
            for name in _VERSION_LATEST_COLUMNS:
                dim.loc[extending, name] = same.loc[codes, name].to_numpy()
            dim.loc[extending, "last_release_id"] = release_id
            dim.loc[extending, "release_count"] += 1

            opened = merged[is_new | is_changed].drop(columns=["attribute_hash_current"])
            opened = opened.assign(version_number=opened["version_number"].fillna(0).astype(int) + 1)
        opened = opened.assign(
            valid_from=effective, valid_to=OPEN_END, is_current=True,
            first_release_id=release_id, last_release_id=release_id, release_count=1,
        )
        dim = opened if dim is None else pd.concat([dim, opened], ignore_index=True)

    dim = dim.drop(columns=["release_id", "attribute_hash"]).sort_values(["hcpcs_code", "version_number"])
    return pl.from_pandas(dim[list(CODE_VERSION_COLUMNS)], include_index=False)


def duckdb_release_by_release(releases: list[tuple[str, date, pl.DataFrame]]) -> pl.DataFrame:
    """Merge releases into SCD2 versions one release at a time with DuckDB UPDATE and INSERT statements."""
    latest_columns = ", ".join(f'{name} = i.{name}' for name in _VERSION_LATEST_COLUMNS)
    record_columns = [name for name in RELEASE_RECORD_COLUMNS if name != "release_id"]
    attribute_hash = "hash(" + ", ".join(BUSINESS_ATTRIBUTES) + ")"
    connection = duckdb.connect()
    try:
        first = releases[0][2]
        connection.register("incoming_frame", first.head(0).to_arrow())
        connection.execute(
            f"CREATE TABLE dim AS SELECT {', '.join(record_columns)}, {attribute_hash} AS attribute_hash, "
            "0::INTEGER AS version_number, NULL::DATE AS valid_from, NULL::DATE AS valid_to, "
            "NULL::BOOLEAN AS is_current, NULL::VARCHAR AS first_release_id, NULL::VARCHAR AS last_release_id, "
            "0::INTEGER AS release_count FROM incoming_frame"
        )
        connection.unregister("incoming_frame")
        for release_id, effective, records in releases:
            connection.register("incoming_frame", records.to_arrow())
            connection.execute(
                f"CREATE OR REPLACE TEMP TABLE incoming AS SELECT *, {attribute_hash} AS attribute_hash "
                "FROM incoming_frame"
            )
            connection.unregister("incoming_frame")

            # A code whose attributes differ from its current version: that version ends here.
            connection.execute(
                "UPDATE dim SET valid_to = ?, is_current = false FROM incoming i "
                "WHERE dim.is_current AND dim.hcpcs_code = i.hcpcs_code AND dim.attribute_hash <> i.attribute_hash",
                [effective],
            )
            # A code stated again unchanged: its current version gains this release.
            connection.execute(
                f"UPDATE dim SET {latest_columns}, last_release_id = ?, release_count = release_count + 1 "
                "FROM incoming i "
                "WHERE dim.is_current AND dim.hcpcs_code = i.hcpcs_code AND dim.attribute_hash = i.attribute_hash",
                [release_id],
            )
            # A new code, or one whose version was just closed: a version opens here.
            connection.execute(
                f"INSERT INTO dim SELECT {', '.join('i.' + name for name in record_columns)}, i.attribute_hash, "
                "coalesce(v.latest_version, 0) + 1, ?, ?, true, ?, ?, 1 "
                "FROM incoming i LEFT JOIN (SELECT hcpcs_code, max(version_number) AS latest_version, "
                "bool_or(is_current) AS has_current FROM dim GROUP BY hcpcs_code) v USING (hcpcs_code) "
                "WHERE NOT coalesce(v.has_current, false)",
                [effective, OPEN_END, release_id, release_id],
            )
        return connection.sql(
            f"SELECT {', '.join(CODE_VERSION_COLUMNS)} FROM dim ORDER BY hcpcs_code, version_number"
        ).pl()
    finally:
        connection.close()


# ---- output checks ------------------------------------------------------------------------

VERSION_KEY = ("hcpcs_code", "version_number", "first_release_id", "last_release_id", "release_count")


def version_mismatches(ours: pl.DataFrame, theirs: pl.DataFrame) -> int:
    """Count versions that differ in code, number, first and last release, or release count."""
    left = ours.select(VERSION_KEY).cast({"version_number": pl.Int64, "release_count": pl.Int64})
    right = theirs.select(VERSION_KEY).cast({"version_number": pl.Int64, "release_count": pl.Int64})
    return left.join(right, on=list(VERSION_KEY), how="anti").height + right.join(
        left, on=list(VERSION_KEY), how="anti"
    ).height


def record_mismatches(ours: pl.DataFrame, codes: list[str], descriptions: list[str]) -> int:
    """Count codes missing on either side, plus codes whose whitespace-collapsed long descriptions differ."""
    theirs = pl.DataFrame({"hcpc": codes, "theirs": descriptions}, schema={"hcpc": pl.String, "theirs": pl.String})
    collapse = pl.col("long_description").str.replace_all(r"\s+", " ").str.strip_chars()
    mine = ours.select("hcpc", long_description=collapse)
    joined = mine.join(theirs.with_columns(pl.col("theirs").str.replace_all(r"\s+", " ").str.strip_chars()),
                       on="hcpc", how="full", coalesce=True)
    return joined.filter(pl.col("long_description").ne_missing(pl.col("theirs"))).height
