"""Derive code versions (`dim_hcpcs_code`) and release-to-release changes from release records.

Everything here is a function of the set of loaded releases, so loading them in any order,
or one of them twice, gives the same tables. The rules, with worked examples from the real
CMS files, are in docs/history.md.
"""

from datetime import date

import polars as pl

from hcpcs.normalize import BUSINESS_ATTRIBUTES, RELEASE_RECORD_COLUMNS

OPEN_END = date(9999, 12, 31)

# Fields compared for hcpcs_release_changes: every CMS field but the record lineage.
COMPARED_FIELDS: tuple[str, ...] = BUSINESS_ATTRIBUTES + ("code_added_date", "action_effective_date")


def latest_issues(releases: pl.DataFrame) -> pl.DataFrame:
    """Keep the newest issue of each release period: a corrected re-issue (_v2, _v3) replaces the earlier ones."""
    return (
        releases.sort("effective_date", "issue")
        .group_by("effective_date", maintain_order=True)
        .last()
        .select("release_id", "effective_date")
    )


def release_statements(records: pl.DataFrame, releases: pl.DataFrame) -> pl.DataFrame:
    """Return the records of the newest issue of every period, with the release effective date."""
    # A release passed twice counts once, so that loading it again changes nothing. The
    # check avoids copying a million records in the usual case of no duplicates.
    if records.select(pl.struct("release_id", "hcpcs_code").is_duplicated().any()).item():
        records = records.unique(["release_id", "hcpcs_code"], keep="first", maintain_order=True)
    current = latest_issues(releases.unique("release_id", keep="first", maintain_order=True))
    current = current.rename({"effective_date": "release_effective_date"})
    return records.join(current, on="release_id", how="inner").sort("hcpcs_code", "release_effective_date")


def release_record_table(records: pl.DataFrame, statements: pl.DataFrame) -> pl.DataFrame:
    """Return the rows of hcpcs_release_record: the statements, then the records of superseded issues.

    The statements already are a copy of the newest issues' records, sorted by code. Reusing
    their columns spares a second sorted copy of up to a million records.
    """
    current = statements["release_id"].unique().implode()
    superseded = records.filter(~pl.col("release_id").is_in(current))
    return pl.concat([statements.select(records.columns), superseded], rechunk=False)


def build_code_versions(statements: pl.DataFrame) -> pl.DataFrame:
    """Group each code's statements into versions and give every version its validity interval.

    `statements` holds one row per code and release (see `release_statements`). A version
    starts at the first statement whose business attributes differ, compared null-safely, from
    the statement before it.
    """
    by_code = pl.col("hcpcs_code")
    # The frame is sorted by code, so the row above belongs to the same code unless the code
    # changes there. A plain shift guarded by that test is much cheaper than a window.
    same_code_above = by_code == by_code.shift(1)
    frame = statements.sort("hcpcs_code", "release_effective_date").with_columns(
        attribute_hash=pl.struct(list(BUSINESS_ATTRIBUTES)).hash(seed=0),
        previous_action_effective_date=pl.when(same_code_above).then(pl.col("action_effective_date").shift(1)),
    )
    frame = frame.with_columns(
        opens_version=same_code_above.not_().fill_null(True)
        | (pl.col("attribute_hash") != pl.col("attribute_hash").shift(1)),
    ).with_columns(version_number=pl.col("opens_version").cast(pl.Int32).cum_sum().over(by_code))

    versions = frame.group_by("hcpcs_code", "version_number").agg(
        *[pl.col(name).last() for name in RELEASE_RECORD_COLUMNS if name not in ("hcpcs_code", "release_id")],
        first_release_id=pl.col("release_id").first(),
        last_release_id=pl.col("release_id").last(),
        release_count=pl.len().cast(pl.Int32),
        opening_release_effective_date=pl.col("release_effective_date").first(),
        opening_action_effective_date=pl.col("action_effective_date").first(),
        opening_previous_action_effective_date=pl.col("previous_action_effective_date").first(),
        earliest_stated_date=pl.min_horizontal(pl.col("code_added_date").min(), pl.col("action_effective_date").min()),
    ).sort("hcpcs_code", "version_number")

    return _assign_validity(versions).select(CODE_VERSION_COLUMNS)


def _assign_validity(versions: pl.DataFrame) -> pl.DataFrame:
    by_code = pl.col("hcpcs_code")
    moved_forward = pl.col("opening_action_effective_date").is_not_null() & (
        pl.col("opening_previous_action_effective_date").is_null()
        | (pl.col("opening_action_effective_date") > pl.col("opening_previous_action_effective_date"))
    )
    # The first version reaches back to the earliest date CMS states for the code, because
    # the releases before the first one loaded are unknown. A later version starts at its
    # action effective date when that date moved forward, else at the release that showed it.
    candidate = (
        pl.when(pl.col("version_number") == 1)
        .then(pl.coalesce("earliest_stated_date", "opening_release_effective_date"))
        .when(moved_forward)
        .then(pl.col("opening_action_effective_date"))
        .otherwise(pl.col("opening_release_effective_date"))
    )
    # A version that records a termination is in effect at least on the termination date
    # itself, the last day the code may be used.
    candidate = pl.when(pl.col("termination_date").is_not_null()).then(
        pl.min_horizontal(candidate, pl.col("termination_date"))
    ).otherwise(candidate)

    # Versions of a code must start on strictly increasing dates: valid_from(k) is the larger
    # of its candidate and valid_from(k-1) + 1 day, computed as a running maximum of
    # candidate - k days.
    shift = pl.duration(days=pl.col("version_number"))
    versions = versions.with_columns(candidate=candidate).with_columns(
        valid_from=((pl.col("candidate") - shift).cum_max().over(by_code) + shift).cast(pl.Date)
    )

    next_start = pl.col("valid_from").shift(-1).over(by_code)
    after_termination = pl.col("termination_date") + pl.duration(days=1)
    valid_to = pl.min_horizontal(next_start, after_termination).fill_null(pl.lit(OPEN_END))
    return versions.with_columns(valid_to=valid_to).with_columns(
        valid_to=pl.max_horizontal("valid_to", pl.col("valid_from") + pl.duration(days=1)).cast(pl.Date),
        is_current=pl.col("version_number") == pl.col("version_number").max().over(by_code),
    )


CODE_VERSION_COLUMNS: tuple[str, ...] = (
    "hcpcs_code",
    "version_number",
    "valid_from",
    "valid_to",
    "is_current",
    *[name for name in RELEASE_RECORD_COLUMNS if name not in ("release_id", "hcpcs_code")],
    "first_release_id",
    "last_release_id",
    "release_count",
)


def build_release_changes(statements: pl.DataFrame) -> pl.DataFrame:
    """List, per release and code, how the code differs from the release before it.

    change_type is one of added, dropped, discontinued (termination date newly set, or a new
    action D), reactivated (termination date cleared, or a new action R), changed, or restated
    (only the added or action effective date differs). Unchanged codes get no row, and the
    first loaded release gets none, because there is nothing to compare it with.
    """
    order = (
        statements.select("release_id", "release_effective_date")
        .unique()
        .sort("release_effective_date")
        .with_columns(previous_release_id=pl.col("release_id").shift(1))
    )
    # One hash per statement over the compared fields and the action code finds the codes that
    # differ from the release before (a few % of the rows), so that the field-by-field
    # comparison below runs on those only.
    hashed = statements.select(
        "release_id", "hcpcs_code", row_hash=pl.struct([*COMPARED_FIELDS, "action_code"]).hash(seed=0)
    )
    candidates = (
        order.filter(pl.col("previous_release_id").is_not_null())
        .select("release_id", "previous_release_id")
        .join(hashed, on="release_id")
        .join(
            hashed.rename({"release_id": "previous_release_id", "row_hash": "previous_hash"}),
            on=["previous_release_id", "hcpcs_code"],
            how="left",
        )
        .filter(pl.col("previous_hash").is_null() | (pl.col("row_hash") != pl.col("previous_hash")))
        .select("release_id", "hcpcs_code")
    )
    current = statements.join(candidates, on=["release_id", "hcpcs_code"], how="semi").join(
        order.select("release_id", "previous_release_id"), on="release_id"
    )
    previous = statements.select(
        "hcpcs_code",
        pl.col("release_id").alias("previous_release_id"),
        *[pl.col(name).alias(f"{name}__previous") for name in COMPARED_FIELDS],
        pl.col("action_code").alias("action_code__previous"),
    )
    pairs = (
        order.filter(pl.col("previous_release_id").is_not_null())
        .select("release_id", "previous_release_id", "release_effective_date")
        .join(current.select("release_id", "hcpcs_code", "action_code", *COMPARED_FIELDS), on="release_id", how="inner")
    )
    compared = pairs.join(previous, on=["previous_release_id", "hcpcs_code"], how="left")

    changed = [
        pl.when(pl.col(name).ne_missing(pl.col(f"{name}__previous"))).then(pl.lit(name))
        for name in COMPARED_FIELDS
    ]
    in_previous = pl.col("code_type__previous").is_not_null()
    compared = compared.with_columns(
        changed_fields=pl.concat_list(changed).list.drop_nulls(),
    ).with_columns(
        change_type=pl.when(~in_previous)
        .then(pl.lit("added"))
        .when(
            (pl.col("termination_date").is_not_null() & pl.col("termination_date__previous").is_null())
            | ((pl.col("action_code") == "D") & (pl.col("action_code__previous") != "D"))
        )
        .then(pl.lit("discontinued"))
        .when(
            (pl.col("termination_date").is_null() & pl.col("termination_date__previous").is_not_null())
            | ((pl.col("action_code") == "R") & (pl.col("action_code__previous") != "R"))
        )
        .then(pl.lit("reactivated"))
        .when(pl.col("changed_fields").list.set_difference(["code_added_date", "action_effective_date"]).list.len() > 0)
        .then(pl.lit("changed"))
        .when(pl.col("changed_fields").list.len() > 0)
        .then(pl.lit("restated"))
        .otherwise(None),
    )
    present = compared.filter(pl.col("change_type").is_not_null()).select(
        "release_id", "previous_release_id", "hcpcs_code", "change_type", "action_code",
        pl.when(pl.col("change_type") == "added").then(pl.lit([], pl.List(pl.String))).otherwise(pl.col("changed_fields")).alias("changed_fields"),
    )

    dropped = (
        order.filter(pl.col("previous_release_id").is_not_null())
        .select("release_id", "previous_release_id")
        .join(hashed.select(pl.col("release_id").alias("previous_release_id"), "hcpcs_code"), on="previous_release_id")
        .join(hashed.select("release_id", "hcpcs_code"), on=["release_id", "hcpcs_code"], how="anti")
        .select(
            "release_id",
            "previous_release_id",
            "hcpcs_code",
            change_type=pl.lit("dropped"),
            action_code=pl.lit(None, pl.String),
            changed_fields=pl.lit([], pl.List(pl.String)),
        )
    )
    return pl.concat([present, dropped]).sort("release_id", "hcpcs_code")


def version_delta(previous: pl.DataFrame | None, current: pl.DataFrame) -> dict[str, int]:
    """Count versions opened and closed by a rebuild, comparing the new dim_hcpcs_code with the old one.

    A version is the same when code, valid_from and first release match. It was opened when
    the old table lacks it, and closed when its valid_to was open-ended and no longer is.
    """
    key = ["hcpcs_code", "valid_from", "first_release_id"]
    if previous is None or previous.is_empty():
        closed = current.filter(pl.col("valid_to") != OPEN_END).height
        return {"versions_opened": current.height, "versions_closed": closed, "versions_removed": 0}
    joined = current.select(*key, "valid_to").join(
        previous.select(*key, pl.col("valid_to").alias("previous_valid_to")), on=key, how="left"
    )
    opened = joined.filter(pl.col("previous_valid_to").is_null()).height
    closed = joined.filter(
        (pl.col("previous_valid_to") == OPEN_END) & (pl.col("valid_to") != OPEN_END)
    ).height
    removed = previous.select(key).join(current.select(key), on=key, how="anti").height
    return {"versions_opened": opened, "versions_closed": closed, "versions_removed": removed}
