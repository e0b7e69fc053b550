"""The honest log: published entries change only with a dated update, and the old text stays readable."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import make_config
from lxml import etree

from blog import pipeline
from blog.cli import cli
from blog.content import ContentProblems
from blog.honesty.lock import read_lock
from blog.render import anchor_for
from tests.pictures import add_picture_entry, plot_png

ENTRY = "log/2026-10-02-verify-config.md"
OLD = "the onion service went away for four minutes."
NEW = "the onion service went away for six minutes."
UPDATE = ('updated:\n  - {date: 2026-11-01T10:00:00Z, reason: "the PoW flag needs tor\'s GPL build", '
          'note: "from the tor log"}\n')


def run(content: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["--content", str(content), "--data", str(content.parent / "data"), *args])
    site, _, output = result.output.partition("\n")  # every command first says which site it works on
    assert site.startswith("site: "), result.output
    return result.exit_code, output


def edit_body(site_dir: Path) -> None:
    path = site_dir / ENTRY
    path.write_text(path.read_text().replace(OLD, NEW))


def add_update(site_dir: Path) -> None:
    path = site_dir / ENTRY
    path.write_text(path.read_text().replace("\n---\n", f"\n{UPDATE}---\n", 1))


@pytest.fixture
def locked(site_dir: Path) -> Path:
    code, output = run(site_dir, "lock")
    assert code == 0, output
    return site_dir


def test_lock_records_each_published_entry_once(locked: Path) -> None:
    entries = read_lock(locked)
    assert sorted(entries) == ["gunicorn-banner", "verify-config"]  # not the draft, not the scheduled one
    assert OLD in entries["verify-config"][0].body
    assert run(locked, "lock") == (0, "nothing to record: the lock is up to date\n")


def test_check_passes_without_a_lock_and_says_what_is_unrecorded(site_dir: Path) -> None:
    code, output = run(site_dir, "check")
    assert code == 0, output
    assert "2 published entries are not recorded" in output and "blog lock" in output


def test_silent_edit_fails_check_with_the_diff_and_the_fix(locked: Path) -> None:
    edit_body(locked)
    code, output = run(locked, "check")
    assert code == 1
    assert f"content/{ENTRY}:" in output
    assert f"-I restarted tor after editing the torrc and {OLD}" in output
    assert f"+I restarted tor after editing the torrc and {NEW}" in output
    assert "updated:\n  - {date: " in output and 'reason: "one line: what changed and why"}' in output


def test_a_build_refuses_a_silent_edit_and_keeps_the_last_good_build(locked: Path, tmp_path: Path) -> None:
    cfg = make_config(locked, tmp_path / "data")
    first = pipeline.publish(cfg)
    edit_body(locked)
    with pytest.raises(ContentProblems, match="changed without a dated update"):
        pipeline.publish(cfg)
    from blog.builds import load_current

    assert load_current(cfg.builds_dir).id == first.id


def test_removing_an_update_fails(locked: Path) -> None:
    edit_body(locked)
    add_update(locked)
    assert run(locked, "lock")[0] == 0
    path = locked / ENTRY
    path.write_text(path.read_text().replace(UPDATE, ""))
    path.write_text(path.read_text().replace(NEW, OLD))
    code, output = run(locked, "check")
    assert code == 1 and "the update log only grows" in output


def test_the_update_makes_check_pass_and_the_page_show_the_log_and_the_earlier_text(
        locked: Path, tmp_path: Path) -> None:
    edit_body(locked)
    add_update(locked)
    code, output = run(locked, "check")
    assert code == 0, output
    code, output = run(locked, "lock")
    assert "verify-config: recorded revision 2 (the PoW flag needs tor's GPL build)" in output
    assert len(read_lock(locked)["verify-config"]) == 2

    from tests.conftest import make_app

    client = make_app(make_config(locked, tmp_path / "data")).test_client()
    page = client.get("/log/verify-config").get_data(as_text=True)
    assert "Updated 2026-11-01</time>: the PoW flag needs tor's GPL build — from the tor log" in page
    assert 'href="/log/verify-config/revisions/1"' in page
    old_anchor = anchor_for("p", f"I restarted tor after editing the torrc and {OLD}")
    # A stale citation of the replaced paragraph lands on a link to its old text.
    assert f'<li id="{old_anchor}"><a href="/log/verify-config/revisions/1#{old_anchor}"' in page
    assert NEW in page and OLD in page.split('id="replaced"')[1]

    old = client.get("/log/verify-config/revisions/1")
    text = old.get_data(as_text=True)
    assert old.status_code == 200
    assert f'<p id="{old_anchor}">I restarted tor after editing the torrc and {OLD}' in text
    assert f"<del>- I restarted tor after editing the torrc and {OLD}</del>" in text
    assert f"<ins>+ I restarted tor after editing the torrc and {NEW}</ins>" in text
    assert "Updated 2026-11-01: the PoW flag needs tor's GPL build" in text
    assert client.get("/log/verify-config/revisions").status_code == 200
    assert client.get("/log/verify-config/revisions/3").status_code == 404
    assert client.get("/log/no-such-entry/revisions/1").status_code == 404


MARKDOWN_UPDATE = ('updated:\n  - {date: 2026-11-01T10:00:00Z, reason: "re-ran `-k sync` *alone*", '
                   'note: "<script>alert(1)</script> & <b>bold</b> [see](javascript:alert(1))"}\n')


def test_update_notes_render_their_inline_markdown_and_escape_the_rest(locked: Path, tmp_path: Path) -> None:
    edit_body(locked)
    path = locked / ENTRY
    path.write_text(path.read_text().replace("\n---\n", f"\n{MARKDOWN_UPDATE}---\n", 1))
    assert run(locked, "lock")[0] == 0

    from tests.conftest import make_app

    client = make_app(make_config(locked, tmp_path / "data")).test_client()
    pages = {url: client.get(url).get_data(as_text=True) for url in (
        "/log/verify-config", "/log/verify-config/revisions", "/log/verify-config/revisions/1")}
    for url, html in pages.items():
        assert "re-ran <code>-k sync</code> <em>alone</em>" in html, url
        assert "`-k sync`" not in html and "*alone*" not in html, url
        assert "<script" not in html and "javascript:" not in html, url
    for url in ("/log/verify-config", "/log/verify-config/revisions/1"):
        assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt; <a>see</a>" in pages[url], url
    # The Markdown mirror is the file as written; the feeds carry no update notes, and no raw HTML.
    assert 'reason: "re-ran `-k sync` *alone*"' in client.get("/log/verify-config.md").get_data(as_text=True)
    for feed in ("/feed.atom", "/feed.rss"):
        assert "<script" not in client.get(feed).get_data(as_text=True)
    found = client.get("/search?q=alone+sync").get_data(as_text=True)
    assert "#update-2026-11-01" in found and "`" not in found.split("<main>")[1]


def test_the_earlier_text_shows_before_the_lock_records_it(locked: Path, tmp_path: Path) -> None:
    edit_body(locked)
    add_update(locked)
    build = pipeline.publish(make_config(locked, tmp_path / "data"))
    revisions = build.revisions["verify-config"]
    assert [r.recorded for r in revisions] == [True, False]
    assert OLD in revisions[0].body and NEW in revisions[1].body


def test_paragraph_changed_dates_each_block(locked: Path, tmp_path: Path) -> None:
    edit_body(locked)
    add_update(locked)
    build = pipeline.publish(make_config(locked, tmp_path / "data"))
    changed = anchor_for("p", f"I restarted tor after editing the torrc and {NEW}")
    kept = build.entry_html(build.site.entry("verify-config")).anchors()
    published = dt.datetime(2026, 10, 2, 9, 15, tzinfo=dt.UTC)
    assert build.block_changed("verify-config", changed) == dt.datetime(2026, 11, 1, 10, tzinfo=dt.UTC)
    others = [a for a in kept if a != changed]
    assert others and all(build.block_changed("verify-config", a) == published for a in others)
    assert build.block_changed("verify-config", "p-00000000") is None


def test_the_feed_carries_an_update_as_an_update(locked: Path, tmp_path: Path) -> None:
    from tests.conftest import make_app

    def atom(data: str) -> dict[str, tuple[str, str, str]]:
        client = make_app(make_config(locked, tmp_path / data)).test_client()
        root = etree.fromstring(client.get("/feed.atom").data)
        ns = {"a": "http://www.w3.org/2005/Atom"}
        return {e.findtext("a:title", namespaces=ns): (e.findtext("a:id", namespaces=ns),
                e.findtext("a:published", namespaces=ns), e.findtext("a:updated", namespaces=ns))
                for e in root.findall("a:entry", ns)}

    before = atom("before")
    edit_body(locked)
    add_update(locked)
    after = atom("after")
    assert before.keys() == after.keys()  # no new post
    title = "tor --verify-config before every restart"
    assert after[title][:2] == before[title][:2]  # same id, same publication time
    assert before[title][2].startswith("2026-10-02T09:15") and after[title][2].startswith("2026-11-01T10:00")


def test_a_corrupt_lock_is_reported_with_the_fix(site_dir: Path) -> None:
    (site_dir / "published.lock").write_text(json.dumps({"format": 99}))
    code, output = run(site_dir, "check")
    assert code == 1 and "not a format-1 lock" in output and "restore it from git" in output


def test_the_bundled_log_passes_check_with_its_lock(content_copy: Path) -> None:
    code, output = run(content_copy, "check")
    assert code == 0, output
    assert "not recorded" not in output, "run `blog lock` on content/ and commit content/published.lock"


def test_citations_say_when_the_cited_paragraph_last_changed(locked: Path, tmp_path: Path) -> None:
    from blog.index.search import Search
    from blog.mcp.tools import BlogTools
    from tests.conftest import make_app

    edit_body(locked)
    add_update(locked)
    cfg = make_config(locked, tmp_path / "data")
    build = pipeline.publish(cfg)
    search = Search()
    changed = search.find(build, "six minutes").citations[0]
    assert changed.text.endswith(NEW)
    assert changed.paragraph_changed == dt.datetime(2026, 11, 1, 10, tzinfo=dt.UTC)
    kept = search.find(build, "Ansible refuse").citations[0]
    assert kept.paragraph_changed == dt.datetime(2026, 10, 2, 9, 15, tzinfo=dt.UTC)

    answer = BlogTools(lambda: build, search, "http://log.example", "").search(None, "six minutes", 3, None, None, None)
    assert answer.results[0].paragraph_changed == "2026-11-01T10:00:00Z"
    page = make_app(cfg).test_client().get("/search?q=six+minutes").get_data(as_text=True)
    assert "this paragraph changed 2026-11-01" in page


PICTURES = "log/2026-10-25-rack-pictures"
PICTURES_INDEX = f"content/{PICTURES}/index.md"


@pytest.fixture
def pictures_locked(site_dir: Path) -> Path:
    add_picture_entry(site_dir)
    code, output = run(site_dir, "lock")
    assert code == 0, output
    return site_dir


def test_the_lock_holds_each_linked_files_hash(pictures_locked: Path) -> None:
    (revision,) = read_lock(pictures_locked)["rack-pictures"]
    assert revision.files == {
        path: hashlib.sha256((pictures_locked / path).read_bytes()).hexdigest()
        for path in (f"{PICTURES}/photo.jpg", f"{PICTURES}/plot.png", "files/nginx.conf")}
    assert read_lock(pictures_locked)["verify-config"][0].files == {}


def test_a_replaced_picture_needs_a_dated_update_then_lock_records_a_revision(pictures_locked: Path,
                                                                              tmp_path: Path) -> None:
    plot_png(pictures_locked / PICTURES / "plot.png", colour=(200, 200, 30))  # same name, other bytes
    code, output = run(pictures_locked, "check")
    assert code == 1, output
    refused = [row for row in output.splitlines() if row.startswith(f"{PICTURES_INDEX}:14: ")]
    assert refused and f"content/{PICTURES}/plot.png has other bytes than when it was recorded" in refused[0], output
    assert "without a dated update" in output and "updated:\n  - {date: " in output
    assert "the body of a published entry changed" not in output
    cfg = make_config(pictures_locked, tmp_path / "data")
    with pytest.raises(ContentProblems, match=r"index\.md:14: .*plot\.png has other bytes"):
        pipeline.publish(cfg)
    index = pictures_locked / PICTURES / "index.md"
    index.write_text(index.read_text().replace(
        "\n---\n", '\nupdated:\n  - {date: 2026-11-02T08:00:00Z, reason: "the plot had the wrong axis"}\n---\n', 1))
    code, output = run(pictures_locked, "lock")
    assert code == 0 and "rack-pictures: recorded revision 2 (the plot had the wrong axis, linked files only)" in output
    first, second = read_lock(pictures_locked)["rack-pictures"]
    assert first.files != second.files and first.body == second.body
    assert second.files[f"{PICTURES}/plot.png"] == hashlib.sha256(
        (pictures_locked / PICTURES / "plot.png").read_bytes()).hexdigest()
    assert run(pictures_locked, "check")[0] == 0
    assert pipeline.publish(cfg).revisions["rack-pictures"][-1].number == 2


def test_a_removed_or_newly_linked_file_needs_an_update_too(pictures_locked: Path) -> None:
    (pictures_locked / "files" / "nginx.conf").unlink()
    code, output = run(pictures_locked, "check")
    assert code == 1 and f"{PICTURES_INDEX}:16: content/files/nginx.conf was removed" in output, output
    (pictures_locked / "files" / "nginx.conf").write_text("server {}\n")
    entry = pictures_locked / ENTRY
    entry.write_text(entry.read_text() + "\nThe config: [nginx.conf](../files/nginx.conf).\n")
    code, output = run(pictures_locked, "check")
    assert "content/files/nginx.conf is newly linked by a published entry" in output, output


def test_a_lock_written_before_files_were_recorded_still_loads(pictures_locked: Path) -> None:
    path = pictures_locked / "published.lock"
    data = json.loads(path.read_text())
    for items in data["entries"].values():
        for item in items:
            del item["files"]  # the lock as the software wrote it before it recorded files
    path.write_text(json.dumps(data))
    (pictures_locked / "published.chain").unlink()  # nor did it keep a revision log then
    assert read_lock(pictures_locked)["rack-pictures"][0].files is None
    plot_png(pictures_locked / PICTURES / "plot.png", colour=(200, 200, 30))
    code, output = run(pictures_locked, "check")  # the files were never recorded: nothing to compare them with
    assert code == 0 and "not recorded in published.lock (rack-pictures)" in output, output
    code, output = run(pictures_locked, "lock")  # records them without asking for an update
    assert code == 0 and output.startswith("rack-pictures: recorded 3 linked file(s) of revision 1\n"), output
    assert len(read_lock(pictures_locked)["rack-pictures"]) == 1
    assert read_lock(pictures_locked)["verify-config"][0].files is None  # it links nothing: nothing to record
    plot_png(pictures_locked / PICTURES / "plot.png")
    assert run(pictures_locked, "check")[0] == 1
