"""Descriptions of every warehouse table, view, macro and column.

They become DuckDB COMMENTs, so `duckdb_tables()`, `duckdb_views()` and `duckdb_columns()`
document the warehouse from inside it, and docs/warehouse.md is checked against them.
"""

RECORD_COLUMNS: dict[str, str] = {
    "release_id": "Release that published the record: YYYY-MM of its effective date, with -vN for a corrected re-issue.",
    "hcpcs_code": "HCPCS Level II procedure code (A0021) or two-character modifier (A1), without CMS's leading blanks.",
    "code_type": "procedure (record id 3) or modifier (record id 7).",
    "record_id": "CMS record id of the first record: 3 procedure, 7 modifier.",
    "sequence_number": "CMS sequence number of the first record, on the text file's scale (00100); workbook values (0010) are multiplied by 10.",
    "long_description": "Full long description, joined from the first record and its continuation records (record id 4 or 8).",
    "short_description": "Short description, at most 28 characters.",
    "pricing_indicator_codes": "Pricing indicator codes PRICE1-PRICE4, non-blank values in CMS position order.",
    "multiple_pricing_indicator_code": "Multiple pricing indicator code (MULT_PI): 9 or A-G.",
    "coverage_issues_manual_references": "Coverage issues manual reference section numbers CIM1-CIM3, in CMS order.",
    "carriers_manual_references": "Medicare carriers manual reference section numbers MCM1-MCM3, in CMS order.",
    "statute_number": "Statute reference for coverage or non-coverage.",
    "lab_certification_codes": "Lab certification codes LABCERT1-LABCERT8, in CMS order.",
    "cross_reference_codes": "Cross-reference codes XREF1-XREF5 to replacement or related codes, in CMS order.",
    "coverage_code": "Medicare coverage code (COV): C, D, I, M or S.",
    "asc_payment_group_code": "ASC payment group (ASC_GRP): YY when approved for an ambulatory surgical center, else NULL (also where CMS published another value; see rejected_record).",
    "asc_payment_group_effective_date": "Date the code was assigned to its ASC payment group (ASC_DT).",
    "mog_payment_group_code": "Medicare outpatient group (MOG) payment group code (OPPS column of the workbook).",
    "mog_payment_policy_indicator": "MOG payment policy indicator (OPPS_PI).",
    "mog_effective_date": "Date the code was assigned to its MOG payment group (OPPS_DT).",
    "processing_note_number": "Processing note number (PROCNOTE), a key of dim_processing_note.",
    "betos_code": "Berenson-Eggers type of service (BETOS) code.",
    "type_of_service_codes": "CMS type of service codes TOS1-TOS5, in CMS order.",
    "anesthesia_base_units": "Anesthesia base unit quantity (ANEST_BU).",
    "code_added_date": "Date CMS added the code to HCPCS (ADD DT).",
    "action_effective_date": "Effective date of the code's latest CMS action (ACT EFF DT).",
    "termination_date": "Last day the code may be used (TERM DT); NULL while the code is active.",
    "action_code": "CMS action code (ACTION CD) describing the latest maintenance: see dim_action.",
    "source_file": "Release folder or zip and file the record was read from.",
    "source_line": "Line of the text file, or row of the workbook, holding the code's first record.",
    "source_format": "text (fixed-width .txt) or workbook (.xlsx or .xls).",
    "continuation_lines": "Number of continuation records (or workbook rows) joined into long_description.",
}

VERSION_COLUMNS: dict[str, str] = {
    "hcpcs_code": RECORD_COLUMNS["hcpcs_code"],
    "version_number": "Version of the code, 1 for the earliest known, counting up with each change.",
    "valid_from": "First day this version is in effect (inclusive).",
    "valid_to": "First day this version is no longer in effect (exclusive): the next version's valid_from, the day after the termination date, or 9999-12-31.",
    "is_current": "True for the code's latest version, also when that version is terminated.",
    **{name: text for name, text in RECORD_COLUMNS.items() if name not in ("release_id", "hcpcs_code")},
    "first_release_id": "Release that first published this version.",
    "last_release_id": "Latest release that published this version.",
    "release_count": "Number of releases that published this version.",
}
VERSION_COLUMNS["action_code"] = "CMS action code in the latest release that published this version."
VERSION_COLUMNS["source_file"] = "File of the latest release that published this version."
VERSION_COLUMNS["source_line"] = "Line or row of the code's first record in source_file."

RELEASE_COLUMNS: dict[str, str] = {
    "release_id": RECORD_COLUMNS["release_id"],
    "period": "Release period, YYYY-MM of the effective date.",
    "issue": "Issue number: 1 for the first publication, 2 or more for a corrected re-issue (_v2, _v3).",
    "effective_date": "Date the release takes effect: January 1 for an annual file, the first of the month for a quarterly one.",
    "is_latest_issue": "True when no later issue of the same period is loaded; only latest issues feed dim_hcpcs_code.",
    "location": "Folder or zip of the raw folder holding the release.",
    "primary_file": "ANWEB file the records were loaded from.",
    "source_format": RECORD_COLUMNS["source_format"],
    "cross_check_file": "The release's ANWEB file in the other format, compared with the loaded one; NULL when CMS shipped one format.",
    "processing_notes_file": "proc_notes file of the release, NULL when the release has none.",
    "content_hash": "SHA-256 over the release's data files, used to notice new or changed releases.",
    "lines_read": "Lines of the text file, or rows of the workbook's first sheet, read.",
    "header_lines": "Lines or rows that are no record: disclaimers and headers before the data, blank lines and rows.",
    "records_loaded": "Codes loaded into hcpcs_release_record.",
    "continuation_lines": "Continuation records joined into the long descriptions of loaded codes.",
    "rejected_lines": "Lines or rows of rejected records, continuation lines included.",
    "rejected_records": "Records rejected whole; their rules are in rejected_record.",
    "nulled_fields": "Fields loaded as NULL because their value broke a rule; listed in rejected_record.",
    "format_differences": "Fields that differ between primary_file and cross_check_file, listed in hcpcs_format_difference.",
    "is_reconciled": "True when lines_read = records_loaded + continuation_lines + header_lines + rejected_lines.",
    "run_id": "Dagster run (or command-line run) that loaded the release.",
    "loaded_at": "UTC time the release was loaded, ISO 8601.",
}

REJECTED_COLUMNS: dict[str, str] = {
    "release_id": RECORD_COLUMNS["release_id"],
    "source_file": "File holding the bad record.",
    "line_number": "Line of the text file, or row of the workbook, of the bad record.",
    "hcpcs_code": "Code of the bad record as it appears in the file.",
    "field": "Raw CMS field that broke the rule (layout names: hcpc, recid, act_eff_dt, ...).",
    "value": "Value found in the field.",
    "rule": "Rule the value broke.",
    "outcome": "'record rejected' (the record is not loaded) or 'field set to NULL' (loaded without this value).",
    "run_id": "Run that rejected the record.",
}

DIFFERENCE_COLUMNS: dict[str, str] = {
    "release_id": RECORD_COLUMNS["release_id"],
    "hcpcs_code": RECORD_COLUMNS["hcpcs_code"],
    "field": "hcpcs_release_record column that differs.",
    "primary_value": "Value in the loaded file, as text (lists joined with |).",
    "cross_check_value": "Value in the release's other-format file, as text.",
}

CHANGE_COLUMNS: dict[str, str] = {
    "release_id": RECORD_COLUMNS["release_id"],
    "previous_release_id": "Release compared with: the latest issue of the period before.",
    "hcpcs_code": RECORD_COLUMNS["hcpcs_code"],
    "change_type": "added, dropped (missing from this release), discontinued, reactivated, changed, or restated (only dates differ).",
    "action_code": "CMS action code in this release.",
    "changed_fields": "hcpcs_release_record columns whose value differs from the previous release.",
}

LOOKUP_COLUMNS: dict[str, str] = {
    "code": "CMS code value.",
    "description": "Meaning of the code, as the CMS record layout gives it.",
    "category": "Heading or parent group the code sits under in the CMS layout, if any.",
}

NOTE_COLUMNS: dict[str, str] = {
    "processing_note_number": "Processing note number, as in processing_note_number of the code tables.",
    "note_text": "Text of the note, unwrapped.",
    "release_id": "Newest release whose proc_notes file holds this note.",
    "source_file": "proc_notes file the text was read from.",
    "line_number": "Line of source_file where the note starts.",
}

BRIDGE_COLUMNS: dict[str, str] = {
    "hcpcs_code": RECORD_COLUMNS["hcpcs_code"],
    "version_number": VERSION_COLUMNS["version_number"],
    "position": "Position of the value in the repeated CMS field, from 1.",
}

# Lookup dimensions: table -> (code table name, what a row is).
LOOKUP_TABLES: dict[str, tuple[str, str]] = {
    "dim_record_id": ("record_id", "One CMS record id (3, 4, 7, 8) and what the record holds."),
    "dim_pricing_indicator": ("pricing_indicator", "One CMS pricing indicator code and its pricing method."),
    "dim_multiple_pricing_indicator": ("multiple_pricing_indicator", "One CMS multiple pricing indicator code."),
    "dim_lab_certification": ("lab_certification", "One CMS lab certification code and its specialty group."),
    "dim_coverage": ("coverage", "One Medicare coverage code."),
    "dim_asc_payment_group": ("asc_payment_group", "One ASC payment group code."),
    "dim_mog_payment_group": ("mog_payment_group", "One Medicare outpatient group (MOG) payment group code."),
    "dim_mog_payment_policy_indicator": ("mog_payment_policy_indicator", "One MOG payment policy indicator."),
    "dim_betos": ("betos", "One Berenson-Eggers type of service (BETOS) code."),
    "dim_type_of_service": ("type_of_service", "One CMS type of service code."),
    "dim_action": ("action", "One CMS action code and the maintenance it stands for."),
}

# Bridge tables for the repeated fields: table -> (list column, value column, lookup table or None).
BRIDGE_TABLES: dict[str, tuple[str, str, str | None]] = {
    "bridge_hcpcs_pricing_indicator": ("pricing_indicator_codes", "pricing_indicator_code", "dim_pricing_indicator"),
    "bridge_hcpcs_coverage_issues_manual": ("coverage_issues_manual_references", "reference", None),
    "bridge_hcpcs_carriers_manual": ("carriers_manual_references", "reference", None),
    "bridge_hcpcs_lab_certification": ("lab_certification_codes", "lab_certification_code", "dim_lab_certification"),
    "bridge_hcpcs_cross_reference": ("cross_reference_codes", "cross_reference_code", None),
    "bridge_hcpcs_type_of_service": ("type_of_service_codes", "type_of_service_code", "dim_type_of_service"),
}

TABLES: dict[str, str] = {
    "dim_hcpcs_release": "One loaded CMS release issue: its files, line accounting and lineage.",
    "hcpcs_release_record": "One code as one release published it, normalized; every loaded release and issue.",
    "dim_hcpcs_code": "One version of a HCPCS code or modifier, in effect from valid_from until valid_to (exclusive).",
    "rejected_record": "One rule broken by one record of a release file, with the value found and what was done.",
    "hcpcs_format_difference": "One field of one code that differs between a release's text file and its workbook.",
    "hcpcs_release_changes": "One code that differs between a release and the release before it.",
    "dim_processing_note": "One CMS processing note, as the newest release that lists it gives it.",
    **{name: text for name, (_, text) in LOOKUP_TABLES.items()},
    **{
        name: f"One value of {list_column} of one code version, with its position."
        for name, (list_column, _, _) in BRIDGE_TABLES.items()
    },
}

VIEWS: dict[str, str] = {
    "hcpcs_current": "The current (latest) version of every code, terminated codes included.",
    "hcpcs_code_detail": "Every field of the current version of every code next to its decoded meaning.",
}

MACROS: dict[str, str] = {
    "hcpcs_as_of": "Table macro: hcpcs_as_of(d) returns the version of every code in effect on DATE d.",
}
