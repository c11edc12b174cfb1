"""Tests for hcpcs.history: code versions and release changes from small fixture releases."""

import random
from datetime import date

import polars as pl
import pytest

from hcpcs.history import version_delta
from hcpcs.releases import discover_releases
from hcpcs.stage import load_release
from hcpcs.warehouse import assemble
from tests.cms_files import first_record, write_text

OPEN_END = date(9999, 12, 31)


def build(tmp_path, releases: dict[str, list[str]], order=None):
    """Write one text release per folder name, load them all, and return the assembled tables."""
    for folder, lines in releases.items():
        write_text(tmp_path / folder / "HCPC_ANWEB.txt", lines)
    staged = [load_release(release, "run-1") for release in discover_releases(tmp_path)]
    if order is not None:
        staged = [staged[i] for i in order]
    # Fixture releases are a few codes each, so the guard against sharp code-count drops is off.
    tables, problems = assemble(staged, max_code_drop=1.0)
    assert problems == []
    return tables


def versions_of(tables, code):
    return (
        tables.versions.filter(pl.col("hcpcs_code") == code)
        .sort("version_number")
        .select("version_number", "valid_from", "valid_to", "is_current", "termination_date", "first_release_id",
                "last_release_id")
        .rows()
    )


def test_unchanged_code_keeps_one_version(tmp_path):
    tables = build(tmp_path, {
        "2024-annual": [first_record("A0021", add_dt="20020101", act_eff_dt="20020101")],
        "2025-annual": [first_record("A0021", add_dt="20020101", act_eff_dt="20020101")],
    })
    assert versions_of(tables, "A0021") == [(1, date(2002, 1, 1), OPEN_END, True, None, "2024-01", "2025-01")]


def test_termination_makes_exactly_one_new_version(tmp_path):
    tables = build(tmp_path, {
        "2024-annual": [first_record("G0503", add_dt="20170101", act_eff_dt="20170101")],
        "2025-annual": [first_record("G0503", add_dt="20170101", act_eff_dt="20250101", term_dt="20241231",
                                     action_cd="D")],
        "2026-annual": [first_record("G0503", add_dt="20170101", act_eff_dt="20250101", term_dt="20241231")],
    })
    assert versions_of(tables, "G0503") == [
        (1, date(2017, 1, 1), date(2024, 12, 31), False, None, "2024-01", "2024-01"),
        (2, date(2024, 12, 31), date(2025, 1, 1), True, date(2024, 12, 31), "2025-01", "2026-01"),
    ]


def test_discontinued_code_not_in_effect_after_termination(tmp_path):
    tables = build(tmp_path, {
        "2024-annual": [first_record("A0021", add_dt="20000101", act_eff_dt="20000101")],
        "2025-annual": [first_record("A0021", add_dt="20000101", act_eff_dt="20250101", term_dt="20241231",
                                     action_cd="D")],
    })
    in_effect = tables.versions.filter(
        (pl.col("valid_from") <= date(2025, 6, 1)) & (pl.col("valid_to") > date(2025, 6, 1))
    )
    assert in_effect.is_empty()


def test_two_changes_in_one_batch_both_kept(tmp_path):
    tables = build(tmp_path, {
        "2024-annual": [first_record("B4105", "Enzyme cartridge", add_dt="20190101", act_eff_dt="20190101")],
        "2024-APR": [first_record("B4105", "Enzyme cartridge", price1="39", add_dt="20190101", act_eff_dt="20240401",
                                  action_cd="P")],
        "2024-JUL": [first_record("B4105", "Enzyme cartridge, enteral", price1="39", add_dt="20190101",
                                  act_eff_dt="20240701", action_cd="C")],
    })
    assert [row[:3] for row in versions_of(tables, "B4105")] == [
        (1, date(2019, 1, 1), date(2024, 4, 1)),
        (2, date(2024, 4, 1), date(2024, 7, 1)),
        (3, date(2024, 7, 1), OPEN_END),
    ]


def test_change_without_new_date_starts_at_release(tmp_path):
    # CMS changed B4105's pricing in 2020 but kept action N and the 2019 action effective date.
    tables = build(tmp_path, {
        "2019-annual": [first_record("B4105", price1="00", mult_pi="9", add_dt="20190101", act_eff_dt="20190101")],
        "2020-annual": [first_record("B4105", price1="39", mult_pi="A", add_dt="20190101", act_eff_dt="20190101")],
    })
    assert [row[:3] for row in versions_of(tables, "B4105")] == [
        (1, date(2019, 1, 1), date(2020, 1, 1)),
        (2, date(2020, 1, 1), OPEN_END),
    ]


def test_date_moving_backwards_adds_no_version(tmp_path):
    # CMS moved A0130's action effective date from 1995 back to 1982 with nothing else changed.
    tables = build(tmp_path, {
        "2016-annual": [first_record("A0130", add_dt="19950101", act_eff_dt="19950101")],
        "2017-annual": [first_record("A0130", add_dt="19950101", act_eff_dt="19820101")],
    })
    assert versions_of(tables, "A0130") == [(1, date(1982, 1, 1), OPEN_END, True, None, "2016-01", "2017-01")]
    assert tables.changes.filter(pl.col("hcpcs_code") == "A0130")["change_type"].to_list() == ["restated"]


def test_absent_code_not_ended(tmp_path):
    tables = build(tmp_path, {
        "2024-annual": [first_record("A0021"), first_record("A0080")],
        "2025-annual": [first_record("A0080")],
    })
    assert versions_of(tables, "A0021")[0][2] == OPEN_END
    assert tables.changes.filter(pl.col("hcpcs_code") == "A0021")["change_type"].to_list() == ["dropped"]


def test_reactivated_code_opens_version_after_gap(tmp_path):
    tables = build(tmp_path, {
        "2023-annual": [first_record("Q0035", add_dt="20000101", act_eff_dt="20230101", term_dt="20221231",
                                     action_cd="D")],
        "2025-annual": [first_record("Q0035", add_dt="20000101", act_eff_dt="20250101", action_cd="R")],
    })
    assert [row[:4] for row in versions_of(tables, "Q0035")] == [
        (1, date(2000, 1, 1), date(2023, 1, 1), False),
        (2, date(2025, 1, 1), OPEN_END, True),
    ]
    assert tables.changes.filter(pl.col("hcpcs_code") == "Q0035")["change_type"].to_list() == ["reactivated"]


def test_modifier_loaded_twice_adds_nothing(tmp_path):
    once = build(tmp_path / "once", {"2024-annual": [first_record("A1", "Dressing for one wound")]})
    twice = build(tmp_path / "twice", {
        "2024-annual": [first_record("A1", "Dressing for one wound")],
        "2025-annual": [first_record("A1", "Dressing for one wound")],
    })
    assert once.versions.height == 1
    assert twice.versions.height == 1
    assert twice.versions["hcpcs_code"].to_list() == ["A1"]
    assert twice.versions["code_type"].to_list() == ["modifier"]


def test_same_release_loaded_twice_is_idempotent(tmp_path):
    write_text(tmp_path / "2024-annual" / "HCPC_ANWEB.txt", [first_record("A0021"), first_record("A1")])
    [release] = discover_releases(tmp_path)
    once, _ = assemble([load_release(release, "run-1")])
    twice, _ = assemble([load_release(release, "run-1"), load_release(release, "run-1")][:1])
    assert once.versions.equals(twice.versions)


def test_reissue_replaces_earlier_issue(tmp_path):
    tables = build(tmp_path, {
        "2026-OCT": [first_record("C9088", "Wrong description")],
        "2026-OCT-v2": [first_record("C9088", "Instillation, bupivacaine and meloxicam")],
    })
    assert tables.versions["long_description"].to_list() == ["Instillation, bupivacaine and meloxicam"]
    assert tables.versions["first_release_id"].to_list() == ["2026-10-v2"]
    assert tables.releases.select("release_id", "is_latest_issue").rows() == [("2026-10", False), ("2026-10-v2", True)]
    assert tables.records.height == 2


def test_release_loaded_after_newer_one_slots_in(tmp_path):
    releases = {
        "2024-annual": [first_record("A0021", "Old text", add_dt="20000101", act_eff_dt="20000101")],
        "2024-APR": [first_record("A0021", "New text", add_dt="20000101", act_eff_dt="20240401", action_cd="C")],
        "2024-JUL": [first_record("A0021", "New text", add_dt="20000101", act_eff_dt="20240401")],
    }
    in_order = build(tmp_path / "in-order", releases)
    reversed_order = build(tmp_path / "reversed", releases, order=[2, 0, 1])
    assert in_order.versions.equals(reversed_order.versions)
    assert in_order.changes.equals(reversed_order.changes)
    assert [row[:3] for row in versions_of(in_order, "A0021")] == [
        (1, date(2000, 1, 1), date(2024, 4, 1)),
        (2, date(2024, 4, 1), OPEN_END),
    ]


def test_changed_fields_listed(tmp_path):
    tables = build(tmp_path, {
        "2024-annual": [first_record("E0210", tos1="A", tos2="L")],
        "2025-annual": [first_record("E0210", tos1="A", tos2="L", tos3="R", betos="D1A")],
    })
    change = tables.changes.filter(pl.col("hcpcs_code") == "E0210").row(0, named=True)
    assert change["change_type"] == "changed"
    assert sorted(change["changed_fields"]) == ["betos_code", "type_of_service_codes"]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_real_releases_any_order_same_tables(real_build, seed):
    staged, tables, _ = real_build
    shuffled = list(staged)
    random.Random(seed).shuffle(shuffled)
    again, _ = assemble(shuffled)
    assert again.versions.equals(tables.versions)
    assert again.changes.equals(tables.changes)
    assert again.releases.sort("release_id").equals(tables.releases.sort("release_id"))


def test_real_b4105_change_starts_2020(real_build):
    _, tables, _ = real_build
    rows = versions_of(tables, "B4105")
    assert [row[:3] for row in rows] == [(1, date(2019, 1, 1), date(2020, 1, 1)), (2, date(2020, 1, 1), OPEN_END)]
    current = tables.versions.filter((pl.col("hcpcs_code") == "B4105") & pl.col("is_current")).row(0, named=True)
    assert current["pricing_indicator_codes"] == ["39"]
    assert current["multiple_pricing_indicator_code"] == "A"


def test_real_a0130_has_one_version_from_1982(real_build):
    _, tables, _ = real_build
    assert [row[:4] for row in versions_of(tables, "A0130")] == [(1, date(1982, 1, 1), OPEN_END, True)]


def test_real_g0503_termination_version(real_build):
    _, tables, _ = real_build
    assert [row[:5] for row in versions_of(tables, "G0503")] == [
        (1, date(2017, 1, 1), date(2017, 12, 31), False, None),
        (2, date(2017, 12, 31), date(2018, 1, 1), True, date(2017, 12, 31)),
    ]


def test_version_delta_counts_opened_and_closed(tmp_path):
    before = build(tmp_path / "before", {
        "2024-annual": [first_record("A0021", add_dt="20000101", act_eff_dt="20000101"), first_record("A0080")],
    })
    after = build(tmp_path / "after", {
        "2024-annual": [first_record("A0021", add_dt="20000101", act_eff_dt="20000101"), first_record("A0080")],
        "2025-annual": [first_record("A0021", "New text", add_dt="20000101", act_eff_dt="20250101", action_cd="C"),
                        first_record("A0080")],
    })
    assert version_delta(before.versions, after.versions) == {
        "versions_opened": 1, "versions_closed": 1, "versions_removed": 0}
    assert version_delta(None, before.versions)["versions_opened"] == 2
