"""The content room: strict, helpful validation and the published/draft/scheduled rules."""

from __future__ import annotations

import ast
import datetime as dt
import re
import subprocess
import sys
from pathlib import Path

import pytest

from blog.content import PAGE_KEY, ContentProblems, check_site, load_site, page_key, page_slug

ROOT = Path(__file__).resolve().parent.parent
BROKEN = ROOT / "tests" / "data" / "broken"


def test_small_site_loads_with_drafts_and_scheduled_entries_hidden(site_dir: Path) -> None:
    site = load_site(site_dir)
    now = dt.datetime(2026, 11, 25, tzinfo=dt.UTC)
    assert [e.slug for e in site.published(now)] == ["gunicorn-banner", "verify-config"]
    assert site.entry("draft", now) is None
    assert site.entry("scheduled", now) is None
    assert site.entry("scheduled", dt.datetime(2099, 1, 1, tzinfo=dt.UTC)) is not None
    assert site.next_publication(now) == dt.datetime(2099, 1, 1, tzinfo=dt.UTC)
    banner = site.entry("gunicorn-banner", now)
    assert banner is not None and banner.updates[0].reason.startswith("the first patch")
    assert banner.last_updated == dt.datetime(2026, 10, 22, 8, tzinfo=dt.UTC)
    assert [(i.kind, i.slug) for i in site.reading_order] == [("page", "start-here"), ("entry", "verify-config")]


EXPECTED = {
    # (file, line): words the message must contain
    ("2026-10-01-missing-title.md", 1): "missing required field 'title'",
    ("2026-10-02-bad-date.md", 3): "is not a date",
    ("2026-10-03-unknown-key.md", 6): "unknown front-matter key 'sumary'",
    ("2026-10-04-broken-yaml.md", 3): "not valid YAML",
    ("2026-10-05-not-utf8.md", 7): "not UTF-8",
    ("2026-10-06-mistyped.md", 4): "tags must be a list",
    ("2026-10-06-mistyped.md", 6): "draft must be true or false",
    ("2026-10-07-script.md", 9): "<script>",
    ("2026-10-07-script.md", 11): "javascript: URL",
    ("2026-10-07-script.md", 13): "remote image",
    ("2026-10-09-dup.md", 1): "slug 'dup' is also used",
    ("notdated.md", 1): "YYYY-MM-DD-slug.md",
    ("about.md", 1): "missing required field 'summary'",
    ("reading-order.yml", 2): "entry 'no-such-entry' does not exist",
}


def test_every_broken_file_is_reported_with_file_line_and_fix() -> None:
    site, problems = check_site(BROKEN)
    assert site is None
    found = {(p.path.name, p.line): str(p) for p in problems}
    for (name, line), words in EXPECTED.items():
        assert (name, line) in found, f"no problem reported at {name}:{line}; got {sorted(found)}"
        assert words in found[(name, line)]
    for text in found.values():
        assert re.match(r"^\S+:\d+: .+ \(.+\)$", text), f"not 'path:line: what (fix)': {text}"
    # fenced code may show a <script> tag: it is displayed, never run
    assert ("2026-10-07-script.md", 16) not in found


def test_load_site_raises_with_every_problem() -> None:
    with pytest.raises(ContentProblems) as caught:
        load_site(BROKEN)
    assert len(caught.value.problems) >= len(EXPECTED)


def test_blog_check_prints_one_line_per_problem_and_fails() -> None:
    result = subprocess.run([sys.executable, "-m", "blog.cli", "--content", str(BROKEN), "--data", "/tmp/unused",
                             "check"], capture_output=True, text=True, cwd=ROOT, check=False)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if re.match(r"^\S+:\d+: ", line)]
    assert len(lines) >= len(EXPECTED)
    assert all("broken/" in line for line in lines)
    assert "problem(s)" in result.stderr


def test_bundled_starter_log_passes_check() -> None:
    result = subprocess.run([sys.executable, "-m", "blog.cli", "--data", "/tmp/unused", "check"],
                            capture_output=True, text=True, cwd=ROOT, check=False)
    assert result.returncode == 0, result.stderr
    count = int(re.search(r"ok: (\d+) published entries", result.stdout).group(1))
    assert count >= 8


def test_date_must_match_file_name(tmp_path: Path, site_dir: Path) -> None:
    path = site_dir / "log" / "2026-10-02-verify-config.md"
    path.write_text(path.read_text().replace("2026-10-02T09:15:00Z", "2026-10-03T09:15:00Z"))
    _, problems = check_site(site_dir)
    assert any("differs from the file name" in str(p) and p.line == 3 for p in problems)


def test_naive_and_offset_times_are_normalised_to_utc(site_dir: Path) -> None:
    path = site_dir / "log" / "2026-10-02-verify-config.md"
    path.write_text(path.read_text().replace("2026-10-02T09:15:00Z", "2026-10-02T11:15:00+02:00"))
    entry = load_site(site_dir).entry("verify-config")
    assert entry is not None and entry.date == dt.datetime(2026, 10, 2, 9, 15, tzinfo=dt.UTC)


def test_an_entry_or_page_can_be_a_folder_with_index_md(site_dir: Path) -> None:
    flat = site_dir / "log" / "2026-10-02-verify-config.md"
    folder = site_dir / "log" / "2026-10-02-verify-config"
    folder.mkdir()
    flat.rename(folder / "index.md")
    (site_dir / "pages" / "about").mkdir()
    (site_dir / "pages" / "about.md").rename(site_dir / "pages" / "about" / "index.md")
    site = load_site(site_dir)
    entry = site.by_slug["verify-config"]
    assert entry.url == "/log/verify-config" and entry.path == Path(site_dir.name, "log", folder.name, "index.md")
    assert site.pages["about"].path == Path(site_dir.name, "pages", "about", "index.md")


def test_a_folder_without_index_md_or_a_page_twice_is_refused(site_dir: Path) -> None:
    (site_dir / "log" / "2026-10-30-pictures").mkdir()
    (site_dir / "log" / "2026-10-30-pictures" / "plot.png").write_bytes(b"")
    (site_dir / "log" / ".editor-state").mkdir()  # hidden folders are the tools' own
    (site_dir / "pages" / "about").mkdir()
    (site_dir / "pages" / "about" / "index.md").write_text((site_dir / "pages" / "about.md").read_text())
    site, problems = check_site(site_dir)
    assert site is None
    text = sorted(str(p) for p in problems)
    assert len(text) == 2, text
    assert text[0].startswith("content/log/2026-10-30-pictures:0: a folder without index.md (put the entry's "
                              "Markdown in content/log/2026-10-30-pictures/index.md"), text
    assert text[1].startswith("content/pages/about.md:1: page 'about' is also content/pages/about/index.md"), text


def test_a_pages_key_is_built_in_one_place() -> None:
    """Entries and pages share one namespace of keys (a build's renderings, texts and folders, the index's
    slugs); only blog.content.page_key makes a page's, so the rule cannot drift between modules."""
    assert page_key("about") == "page:about" and page_slug("page:about") == "about"
    assert page_slug("about") is None  # an entry's key is its slug
    by_hand = set()
    for path in sorted((ROOT / "blog").rglob("*.py")):
        if path.name == "site.py" and path.parent.name == "content":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            first = node.values[0] if isinstance(node, ast.JoinedStr) and node.values else node
            if isinstance(first, ast.Constant) and isinstance(first.value, str) and first.value.startswith(PAGE_KEY):
                by_hand.add(f"{path.name}:{node.lineno}")
    assert not by_hand, f"a page's key built by hand (use blog.content.page_key or Page.key): {sorted(by_hand)}"
