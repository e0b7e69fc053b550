"""Builds: a saved build keeps the Markdown on disk, reads it back on demand, and refuses other formats."""

from __future__ import annotations

import pickle
import subprocess
import sys

import pytest

from blog import builds, pipeline
from blog.config import Config
from blog.content import load_site


def test_a_loaded_build_reads_each_text_from_disk_and_keeps_none_in_memory(config: Config) -> None:
    pipeline.publish(config)
    site = load_site(config.content_dir)
    loaded = builds.load_current(config.builds_dir)
    assert loaded is not None and loaded.texts is not None
    snapshot = (loaded.path / builds.SNAPSHOT).read_bytes()
    for fresh in site.entries:
        stored = loaded.site.by_slug[fresh.slug]
        assert stored.text._body is None and stored.text._source is None  # only the hashes stay in memory
        assert fresh.body[:200].encode() not in snapshot
        assert stored.body == fresh.body and stored.source == fresh.source
        assert stored.body_hash == fresh.body_hash
    for slug, page in site.pages.items():
        assert loaded.site.pages[slug].body == page.body


def test_a_worker_process_reads_the_texts_of_a_build_another_process_saved(config: Config) -> None:
    pipeline.publish(config)
    slug = load_site(config.content_dir).entries[0].slug
    code = ("import sys; from pathlib import Path; from blog import builds; "
            "b = builds.load_current(Path(sys.argv[1])); print(len(b.site.by_slug[sys.argv[2]].source))")
    done = subprocess.run([sys.executable, "-c", code, str(config.builds_dir), slug],
                          capture_output=True, text=True, timeout=60, check=True)
    assert int(done.stdout) == len(load_site(config.content_dir).by_slug[slug].source)


def test_a_build_of_another_format_is_refused_and_rebuilt(config: Config) -> None:
    first = pipeline.publish(config)
    path = first.path / builds.SNAPSHOT
    old = pickle.loads(path.read_bytes())
    old.format = builds.BUILD_FORMAT - 1
    path.write_bytes(pickle.dumps(old))
    with pytest.raises(builds.BuildError, match="another version"):
        builds.load_current(config.builds_dir)
    again = pipeline.publish(config, force=True)
    assert builds.load_current(config.builds_dir).format == builds.BUILD_FORMAT
    assert again.site.entries[0].body == first.site.entries[0].body


def test_a_build_naming_modules_that_are_gone_is_refused_and_rebuilt(config: Config) -> None:
    first = pipeline.publish(config)
    # What a build pickled before the content room became a package looks like to this version.
    (first.path / builds.SNAPSHOT).write_bytes(b"cblog.contenttext\nText\n.")
    with pytest.raises(builds.BuildError, match="cannot read build"):
        builds.load_current(config.builds_dir)
    again = pipeline.publish(config, force=True)
    assert builds.load_current(config.builds_dir).id == again.id


def test_an_unchanged_entry_is_copied_not_rendered_again(config: Config) -> None:
    first = pipeline.publish(config)
    entry = first.site.entries[0]
    [path] = config.content_dir.glob(f"log/*-{entry.slug}.md")
    previous = builds.load_current(config.builds_dir)
    again = builds.make_build(config.content_dir, config.builds_dir, previous)
    assert all(again.rendered.is_copy(e.slug) for e in again.site.entries)  # compared by body hash
    path.write_text(path.read_text() + "\nOne more closing paragraph.\n")
    changed = builds.make_build(config.content_dir, config.builds_dir, previous, build_id="changed")
    assert not changed.rendered.is_copy(entry.slug)
    assert all(changed.rendered.is_copy(e.slug) for e in changed.site.entries[1:])
    assert "One more closing paragraph." in changed.rendered[entry.slug].html
    builds.save(changed)  # the copies are the previous build's bytes, read back as the same renderings
    reread = builds.load(config.builds_dir, "changed")
    for e in changed.site.entries[1:]:
        assert reread.rendered[e.slug] == previous.rendered[e.slug]
    assert "One more closing paragraph." in reread.rendered[entry.slug].html


def test_an_edit_only_in_leading_whitespace_is_rendered_again(config: Config) -> None:
    first = pipeline.publish(config)
    entry = first.site.entries[0]
    [path] = config.content_dir.glob(f"log/*-{entry.slug}.md")
    text = path.read_text()
    body_start = text.index(entry.body)
    # Four spaces make the first paragraph a code block; the body's hash (which strips) does not change.
    path.write_text(text[:body_start] + "    " + text[body_start:])
    changed = builds.make_build(config.content_dir, config.builds_dir, builds.load_current(config.builds_dir))
    assert changed.site.by_slug[entry.slug].body_hash == entry.body_hash
    assert not changed.rendered.is_copy(entry.slug)
    assert changed.rendered[entry.slug].blocks[0].kind == "code"
