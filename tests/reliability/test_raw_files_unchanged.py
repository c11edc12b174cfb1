"""Raw files are never modified: loading every real CMS release leaves each file byte for byte as it was.

Every child run in the other reliability tests compares the raw folder's checksums before and
after as well (see Sandbox.run and the terminal summary).
"""

from pathlib import Path

import pytest

from hcpcs.releases import discover_releases
from hcpcs.stage import load_release
from tests.reliability.support import assert_raw_unchanged, raw_checksums


@pytest.mark.real_data
def test_real_releases_raw_unchanged(shared_raw_dir: Path):
    before = raw_checksums(shared_raw_dir)
    assert len(before) > 40, f"expected the full set of real release files, found {len(before)}"

    releases = discover_releases(shared_raw_dir)
    for release in releases:
        staged = load_release(release, "checksums")
        assert staged.summary["records_loaded"] > 0
        release.content_hash()

    assert_raw_unchanged(shared_raw_dir, before)
