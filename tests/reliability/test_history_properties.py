"""Property-based tests of the code history (hypothesis).

A strategy draws a random sequence of releases: codes that stay, change, are restated,
discontinued (termination date set, action D), reactivated (termination cleared, action R)
or left out, and periods issued more than once (`_v2`, `_v3` replacing the first issue). The
frames have the `hcpcs_release_record` shape and go through `release_statements`,
`build_code_versions` and `build_release_changes`. A second property writes records in the
CMS fixed-width layout and parses them back with `read_anweb_text`.

HCPCS_RELIABILITY_SCALE multiplies the examples per property (see support.py).
"""

import random
from dataclasses import dataclass, replace
from datetime import date, timedelta

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from hcpcs import checks, layout
from hcpcs.history import build_code_versions, build_release_changes, release_statements
from hcpcs.normalize import normalize_records, validate_records
from hcpcs.readers import read_anweb_text
from hcpcs.releases import discover_releases
from hcpcs.stage import load_release, read_staged, write_staged
from hcpcs.warehouse import assemble
from tests.cms_files import continuation_record, first_record
from tests.reliability.support import RELIABILITY_PROFILE, Sandbox, record_outcome, scaled, write_text_release


def _template_record() -> tuple[dict, pl.Schema]:
    """Return one normalized record of `hcpcs_release_record` and the table's schema, made by the product."""
    result = read_anweb_text((first_record("A0021") + "\r\n").encode("cp1252"), "template.txt")
    valid, _ = validate_records(result)
    frame = normalize_records(valid, "2020-01", "template.txt", "text")
    return frame.row(0, named=True), frame.schema


TEMPLATE, RECORD_SCHEMA = _template_record()
CODES = ("A0021", "A0080", "G0503", "J9999", "V5362", "25", "GA")
DESCRIPTIONS = ("Ambulance service", "Ambulance service, per mile", "Injection, drug", "Mobile ultrasound")
PRICING = ("00", "11", "21", "57")
PERIODS = tuple(date(2016 + quarter // 4, 1 + 3 * (quarter % 4), 1) for quarter in range(40))
EVENTS = ("same", "change", "restate", "discontinue", "reactivate", "absent")
VERSION_KEY = ["hcpcs_code", "version_number"]
CHANGE_KEY = ["release_id", "hcpcs_code"]


@dataclass(frozen=True)
class CodeState:
    """What one release states about one code, in the fields the history compares."""

    description: str
    pricing: str
    termination: date | None
    added: date
    action_effective: date
    action: str

    @property
    def business(self) -> tuple:
        return (self.description, self.pricing, self.termination)


@dataclass
class Issue:
    """One issue of a release period and the codes it lists."""

    release_id: str
    effective_date: date
    issue: int
    listed: dict[str, CodeState]


@dataclass
class History:
    issues: list[Issue]

    def latest_issues(self) -> list[Issue]:
        latest: dict[date, Issue] = {}
        for issue in self.issues:
            if issue.effective_date not in latest or issue.issue > latest[issue.effective_date].issue:
                latest[issue.effective_date] = issue
        return [latest[period] for period in sorted(latest)]

    def records(self, issues: list[Issue] | None = None) -> pl.DataFrame:
        rows = []
        for issue in self.issues if issues is None else issues:
            for line, (code, state) in enumerate(sorted(issue.listed.items()), start=1):
                rows.append(record_row(issue.release_id, code, state, line))
        return pl.DataFrame(rows, schema=RECORD_SCHEMA)

    def releases(self, issues: list[Issue] | None = None) -> pl.DataFrame:
        chosen = self.issues if issues is None else issues
        return pl.DataFrame(
            {
                "release_id": [issue.release_id for issue in chosen],
                "effective_date": [issue.effective_date for issue in chosen],
                "issue": [issue.issue for issue in chosen],
            },
            schema={"release_id": pl.String, "effective_date": pl.Date, "issue": pl.Int64},
        )


def record_row(release_id: str, code: str, state: CodeState, line: int) -> dict:
    is_modifier = len(code) == 2
    row = dict(TEMPLATE)
    row.update(
        release_id=release_id,
        hcpcs_code=code,
        code_type="modifier" if is_modifier else "procedure",
        record_id=layout.MODIFIER_FIRST if is_modifier else layout.PROCEDURE_FIRST,
        long_description=state.description,
        short_description=state.description[:28],
        pricing_indicator_codes=[state.pricing],
        code_added_date=state.added,
        action_effective_date=state.action_effective,
        termination_date=state.termination,
        action_code=state.action,
        source_file=f"{release_id}/HCPC_ANWEB.txt",
        source_line=line,
    )
    return row


def apply_event(draw, state: CodeState, event: str, period: date) -> CodeState | None:
    """Return what the next issue states about a code after `event`, or None when it leaves the code out."""
    if event == "absent":
        return None
    if event == "same":
        return replace(state, action="N")
    if event == "change":
        return replace(
            state,
            description=draw(st.sampled_from(DESCRIPTIONS)),
            pricing=draw(st.sampled_from(PRICING)),
            action_effective=period,
            action="C",
        )
    if event == "restate":
        # A restated date may also move backwards, as CMS corrections sometimes do.
        moved = period - timedelta(days=draw(st.sampled_from((0, 0, 1, 90, 800))))
        added = state.added if draw(st.booleans()) else moved - timedelta(days=draw(st.integers(0, 400)))
        return replace(state, added=added, action_effective=moved, action="N")
    if event == "discontinue":
        # CMS sets the termination date near the release, sometimes before or well after it.
        termination = period + timedelta(days=draw(st.integers(-400, 400)))
        return replace(state, termination=termination, action_effective=period, action="D")
    return replace(state, termination=None, action_effective=period, action="R")


@st.composite
def release_histories(draw) -> History:
    codes = draw(st.lists(st.sampled_from(CODES), min_size=1, max_size=5, unique=True))
    periods = sorted(draw(st.lists(st.sampled_from(PERIODS), min_size=1, max_size=6, unique=True)))
    state = {
        code: CodeState(
            description=draw(st.sampled_from(DESCRIPTIONS)),
            pricing="00",
            termination=None,
            added=periods[0] - timedelta(days=draw(st.integers(0, 3000))),
            action_effective=periods[0],
            action="N",
        )
        for code in codes
    }
    issues = []
    for period in periods:
        for issue_number in range(1, draw(st.sampled_from((1, 1, 1, 2, 3))) + 1):
            listed = {}
            for code in codes:
                stated = apply_event(draw, state[code], draw(st.sampled_from(EVENTS)), period)
                if stated is not None:
                    listed[code] = stated
            suffix = f"-v{issue_number}" if issue_number > 1 else ""
            issues.append(Issue(f"{period:%Y-%m}{suffix}", period, issue_number, listed))
        state.update(issues[-1].listed)
    return History(issues)


def sorted_versions(statements: pl.DataFrame) -> pl.DataFrame:
    return build_code_versions(statements).sort(VERSION_KEY)


def sorted_changes(statements: pl.DataFrame) -> pl.DataFrame:
    return build_release_changes(statements).sort(CHANGE_KEY)


# ---- properties ------------------------------------------------------------------------------


@settings(RELIABILITY_PROFILE, max_examples=scaled(60))
@given(release_histories())
def test_code_versions_hold_invariants(history: History):
    statements = release_statements(history.records(), history.releases())
    versions = build_code_versions(statements)

    expected_statements = sum(len(issue.listed) for issue in history.latest_issues())
    assert statements.height == expected_statements
    assert checks.one_current_version_per_code(versions).is_empty()
    assert checks.no_overlapping_versions(versions).is_empty()
    assert checks.valid_from_before_valid_to(versions).is_empty()
    assert record_outcome("hypothesis: statements kept in dim_hcpcs_code", expected_statements,
                          int(versions["release_count"].sum() or 0)) == 0

    for code, code_versions in versions.sort(VERSION_KEY).group_by("hcpcs_code", maintain_order=True):
        code_versions = code_versions.sort("version_number")
        numbers = code_versions["version_number"].to_list()
        starts = code_versions["valid_from"].to_list()
        ends = code_versions["valid_to"].to_list()
        assert numbers == list(range(1, len(numbers) + 1))
        assert all(start < end for start, end in zip(starts, ends))
        assert all(end <= next_start for end, next_start in zip(ends, starts[1:]))
        assert code_versions["is_current"].to_list() == [False] * (len(numbers) - 1) + [True]

        stated = [issue.listed[code[0]] for issue in history.latest_issues() if code[0] in issue.listed]
        changes = sum(1 for before, after in zip(stated, stated[1:]) if before.business != after.business)
        assert len(numbers) == 1 + changes
        current = code_versions.row(-1, named=True)
        assert current["long_description"] == stated[-1].description
        assert current["pricing_indicator_codes"] == [stated[-1].pricing]
        assert current["termination_date"] == stated[-1].termination


@settings(RELIABILITY_PROFILE, max_examples=scaled(40))
@given(release_histories(), st.randoms(use_true_random=False))
def test_history_independent_of_load_order(history: History, rng: random.Random):
    records = history.records()
    releases = history.releases()
    shuffled_records = records[rng.sample(range(records.height), records.height)]
    shuffled_releases = releases[rng.sample(range(releases.height), releases.height)]

    statements = release_statements(records, releases)
    shuffled = release_statements(shuffled_records, shuffled_releases)

    assert_frame_equal(sorted_versions(shuffled), sorted_versions(statements))
    assert_frame_equal(sorted_changes(shuffled), sorted_changes(statements))


@settings(RELIABILITY_PROFILE, max_examples=scaled(40))
@given(release_histories())
def test_reissue_replaces_earlier_issue(history: History):
    """A period's _v2/_v3 replaces its earlier issues: loading those too changes nothing."""
    latest = history.latest_issues()
    with_all = release_statements(history.records(), history.releases())
    latest_only = release_statements(history.records(latest), history.releases(latest))

    assert_frame_equal(sorted_versions(with_all), sorted_versions(latest_only))
    assert_frame_equal(sorted_changes(with_all), sorted_changes(latest_only))


@settings(RELIABILITY_PROFILE, max_examples=scaled(40))
@given(release_histories())
def test_history_rebuild_is_idempotent(history: History):
    statements = release_statements(history.records(), history.releases())

    assert_frame_equal(build_code_versions(statements), build_code_versions(statements))
    assert_frame_equal(build_release_changes(statements), build_release_changes(statements))
    again = release_statements(statements.drop("release_effective_date"), history.releases())
    assert_frame_equal(sorted_versions(again), sorted_versions(statements))


def expected_change(before: CodeState | None, after: CodeState | None) -> str | None:
    """Return the change_type that docs/history.md gives a code stated as `before`, then as `after`."""
    if before is None:
        return "added"
    if after is None:
        return "dropped"
    if (before.termination is None and after.termination is not None) or (after.action == "D" != before.action):
        return "discontinued"
    if (before.termination is not None and after.termination is None) or (after.action == "R" != before.action):
        return "reactivated"
    if before.business != after.business:
        return "changed"
    if (before.added, before.action_effective) != (after.added, after.action_effective):
        return "restated"
    return None


@settings(RELIABILITY_PROFILE, max_examples=scaled(60))
@given(release_histories())
def test_release_changes_match_model(history: History):
    """Added, dropped, discontinued, reactivated, changed and restated match what each release stated."""
    statements = release_statements(history.records(), history.releases())
    changes = build_release_changes(statements)

    # A release that lists no code has no statement, so it takes no part in the comparison.
    stating = [issue for issue in history.latest_issues() if issue.listed]
    expected = set()
    for before, after in zip(stating, stating[1:]):
        for code in before.listed.keys() | after.listed.keys():
            change = expected_change(before.listed.get(code), after.listed.get(code))
            if change:
                expected.add((after.release_id, code, change))
    found = set(changes.select("release_id", "hcpcs_code", "change_type").iter_rows())
    assert found == expected


@settings(RELIABILITY_PROFILE, max_examples=scaled(20))
@given(release_histories())
def test_release_twice_same_tables(history: History):
    records = history.records()
    releases = history.releases()
    once = release_statements(records, releases)
    twice = release_statements(pl.concat([records, records]), pl.concat([releases, releases]))

    assert_frame_equal(sorted_versions(twice), sorted_versions(once))
    assert_frame_equal(sorted_changes(twice), sorted_changes(once))


def test_release_staged_twice_same_tables(tmp_path):
    """Loading the same release again replaces its staged copy, so the warehouse tables do not change."""
    sandbox = Sandbox(tmp_path / "sandbox").create()
    expected = write_text_release(sandbox.raw, "2026-annual", {"A0021": "Ambulance", "25": "Significant service"})
    expected += write_text_release(sandbox.raw, "2026-APR", {"A0021": "Ambulance, per mile", "25": "Significant service"})
    releases = discover_releases(sandbox.raw)
    for release in releases:
        write_staged(load_release(release, "first"), sandbox.staging)
    once, _ = assemble(read_staged(sandbox.staging))
    write_staged(load_release(releases[-1], "second"), sandbox.staging)
    twice, _ = assemble(read_staged(sandbox.staging))

    assert_frame_equal(twice.records, once.records)
    assert_frame_equal(twice.versions, once.versions)
    assert_frame_equal(twice.changes, once.changes)
    assert record_outcome("release staged twice", expected, twice.records.height) == 0


# ---- fixed-width round trip ------------------------------------------------------------------

_FIELD_CHARACTERS = st.characters(codec="cp1252", exclude_categories=("Cc", "Cs", "Zs", "Zl", "Zp", "Co", "Cn"))
_WORDS = st.lists(st.text(_FIELD_CHARACTERS, min_size=1, max_size=12), min_size=1, max_size=30)
_FIELD_BY_NAME = {field.name: field for field in layout.FIELDS}
_FREE_FIELDS = tuple(name for name in layout.RAW_COLUMNS if name not in ("hcpc", "seqnum", "recid", "long_description"))


def field_value(width: int):
    """Text that fits `width` characters, words split by single spaces, no blank at either end."""
    return _WORDS.map(lambda words: " ".join(words)[:width].strip())


def description_chunks(words: list[str]) -> list[str]:
    """Split words into chunks of at most 80 characters at word boundaries, as CMS wraps them."""
    chunks, current = [], ""
    for word in words:
        candidate = f"{current} {word}" if current else word
        if len(candidate) > 80:
            chunks.append(current)
            current = word
        else:
            current = candidate
    chunks.append(current)
    return chunks


@st.composite
def cms_records(draw) -> list[dict]:
    procedure = st.from_regex(r"\A[A-Z][0-9]{4}\Z")
    modifier = st.from_regex(r"\A[A-Z0-9]{2}\Z")
    codes = draw(st.lists(st.one_of(procedure, modifier), min_size=1, max_size=3, unique=True))
    records = []
    for code in codes:
        fields = {name: draw(field_value(_FIELD_BY_NAME[name].end - _FIELD_BY_NAME[name].start)) for name in _FREE_FIELDS}
        words = draw(st.lists(st.text(_FIELD_CHARACTERS, min_size=1, max_size=20), min_size=1, max_size=40))
        records.append({
            "code": code,
            "seqnum": draw(st.from_regex(r"\A[0-9]{5}\Z")),
            "chunks": description_chunks(words),
            "fields": fields,
        })
    return records


@settings(RELIABILITY_PROFILE, max_examples=scaled(60))
@given(cms_records(), st.booleans())
def test_fixed_width_round_trip(records: list[dict], padded: bool):
    lines = []
    for record in records:
        lines.append(first_record(record["code"], record["chunks"][0], seqnum=record["seqnum"], **record["fields"]))
        for chunk in record["chunks"][1:]:
            lines.append(continuation_record(record["code"], chunk, padded=padded))
    data = "".join(line + "\r\n" for line in lines).encode("cp1252")

    result = read_anweb_text(data, "round-trip.txt")

    assert result.rejects.is_empty(), result.rejects.to_dicts()
    assert result.lines_read == len(lines)
    assert result.records.height == len(records)
    for parsed, record in zip(result.records.iter_rows(named=True), records):
        assert parsed["hcpc"] == record["code"]
        assert parsed["seqnum"] == record["seqnum"]
        assert parsed["long_description"] == " ".join(record["chunks"])
        assert parsed["continuation_lines"] == len(record["chunks"]) - 1
        for name, value in record["fields"].items():
            assert parsed[name] == value, name
