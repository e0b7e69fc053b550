"""Corrections in order: a new update is dated after what the lock recorded, and recorded under its own reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import make_config

from blog import pipeline
from blog.content import ContentProblems
from blog.honesty.lock import read_lock
from tests.test_honesty import ENTRY, NEW, OLD, run

LATER = "the onion service went away for seven minutes."


def _update(site_dir: Path, old: str, new: str, date: str, reason: str) -> int:
    """Change the body and add an update item (written last in the list); return the item's line."""
    path = site_dir / ENTRY
    text = path.read_text().replace(old, new)
    item = f'  - {{date: {date}, reason: "{reason}"}}\n'
    if "updated:\n" in text:
        head, _, rest = text.partition("updated:\n")
        items, sep, tail = rest.partition("---\n")
        text = f"{head}updated:\n{items}{item}{sep}{tail}"
    else:
        text = text.replace("\n---\n", f"\nupdated:\n{item}---\n", 1)
    path.write_text(text)
    return next(n for n, line in enumerate(text.splitlines(), start=1) if f"date: {date}" in line)


@pytest.fixture
def revised(site_dir: Path) -> Path:
    """The test site locked, then corrected once at 16:30 and locked again (revision 2)."""
    assert run(site_dir, "lock")[0] == 0
    _update(site_dir, OLD, NEW, "2026-11-01T16:30:00Z", "six minutes, not four")
    code, output = run(site_dir, "lock")
    assert code == 0 and "recorded revision 2 (six minutes, not four)" in output, output
    return site_dir


def test_a_backdated_update_is_refused_by_check_and_by_every_build_at_its_line(revised: Path,
                                                                                tmp_path: Path) -> None:
    cfg = make_config(revised, tmp_path / "data")
    good = pipeline.publish(cfg)
    line = _update(revised, NEW, LATER, "2026-11-01T16:00:00Z", "seven minutes, by the tor log")
    code, output = run(revised, "check")
    assert code == 1
    assert f"content/{ENTRY}:{line}: the new update dated 2026-11-01T16:00:00Z (seven minutes, by the tor log) " \
           "is dated before what published.lock recorded last (2026-11-01T16:30:00Z, revision 2)" in output, output
    assert "date it after 2026-11-01T16:30:00Z" in output
    with pytest.raises(ContentProblems) as refused:
        pipeline.publish(cfg)
    assert [p.line for p in refused.value.problems] == [line]
    assert pipeline.builds.load_current(cfg.builds_dir).id == good.id  # the last good build stays current
    assert run(revised, "lock")[0] == 1  # nothing is recorded under the wrong date or reason
    assert len(read_lock(revised)["verify-config"]) == 2


def test_a_correctly_dated_update_is_recorded_under_its_own_date_and_reason(revised: Path) -> None:
    _update(revised, NEW, LATER, "2026-11-02T08:00:00Z", "seven minutes, by the tor log")
    assert run(revised, "check")[0] == 0
    code, output = run(revised, "lock")
    assert code == 0 and "verify-config: recorded revision 3 (seven minutes, by the tor log)" in output, output
    third = read_lock(revised)["verify-config"][-1]
    assert (third.since, third.reason) == ("2026-11-02T08:00:00Z", "seven minutes, by the tor log")
    assert third.dates == ["2026-11-01T16:30:00Z", "2026-11-02T08:00:00Z"]


def test_a_lock_that_names_no_update_dates_still_catches_the_backdated_one(revised: Path) -> None:
    lock = revised / "published.lock"
    data = json.loads(lock.read_text())
    for item in data["entries"]["verify-config"]:
        item.pop("dates")  # as an older `blog lock` wrote it
    lock.write_text(json.dumps(data))
    line = _update(revised, NEW, LATER, "2026-11-01T16:00:00Z", "seven minutes, by the tor log")
    code, output = run(revised, "check")
    assert code == 1 and f"content/{ENTRY}:{line}: the new update dated 2026-11-01T16:00:00Z" in output, output


def test_an_update_dated_in_the_future_or_an_edited_recorded_date_is_refused(revised: Path) -> None:
    line = _update(revised, NEW, LATER, "2999-01-01T00:00:00Z", "from the future")
    code, output = run(revised, "check")
    assert code == 1 and f"content/{ENTRY}:{line}: the update dated 2999-01-01T00:00:00Z is in the future" in output
    path = revised / ENTRY
    path.write_text(path.read_text().replace("2999-01-01T00:00:00Z", "2026-11-03T00:00:00Z")
                    .replace("2026-11-01T16:30:00Z", "2026-11-01T16:20:00Z"))
    code, output = run(revised, "check")
    assert code == 1 and "the update dated 2026-11-01T16:30:00Z was recorded in published.lock and is no " \
                         "longer in the entry" in output, output
