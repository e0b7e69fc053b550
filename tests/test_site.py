"""A site of one's own: `blog init` makes one, and `blog` finds it the way git finds its repository."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from blog.cli import cli
from processes import Server, free_port

ROOT = Path(__file__).resolve().parent.parent


def blog(*args: str, cwd: Path, **env: str) -> Result:
    """Run `blog` in cwd, with none of the machine's BLOG_* settings but those given."""
    unset: dict[str, str | None] = {k: None for k in os.environ if k.startswith("BLOG_")}
    with contextlib.chdir(cwd):
        result = CliRunner().invoke(cli, list(args), env={**unset, "BLOG_SEMANTIC": "0", "BLOG_TOR_MODE": "off", **env})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def site_line(result: Result) -> str:
    """Return the one "site:" line a command printed on stderr."""
    lines = [line for line in result.stderr.splitlines() if line.startswith("site: ")]
    assert len(lines) == 1, result.stderr[-2000:]
    return lines[0]


def new_site(folder: Path, *extra_pages: str) -> Path:
    """Create a site with `blog init`, plus standing pages (so two sites tell apart by their page count)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    done = blog("init", str(folder), cwd=folder.parent)
    assert done.exit_code == 0, done.stderr
    for slug in extra_pages:
        page = folder / "content" / "pages" / f"{slug}.md"
        page.write_text(f'---\ntitle: "{slug}"\nsummary: "A page."\n---\n\nText.\n')
    return folder


def test_init_creates_a_site_that_checks_and_builds(tmp_path: Path) -> None:
    site = new_site(tmp_path / "mylog")
    content = site / "content"
    assert {p.name for p in (content / "pages").iterdir()} == {"start-here.md", "about.md", "honesty.md"}
    [entry] = (content / "log").iterdir()
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}-my-first-entry\.md", entry.name)
    assert "\ndraft: true\n" in entry.read_text()
    assert json.loads((content / "published.lock").read_text()) == {"format": 1, "entries": {}}
    assert "- page: start-here" in (content / "reading-order.yml").read_text()
    settings = (site / "blog.toml").read_text()
    assert settings.startswith("#") and 'content_dir = "content"' in settings and 'data_dir = "var"' in settings
    subprocess.run(["git", "init", "-q", str(site)], check=True)
    ignored = subprocess.run(["git", "-C", str(site), "check-ignore", "-q", "var/builds/current"], check=False)
    assert ignored.returncode == 0, "the data folder must not be committed"

    checked = blog("check", cwd=site)
    assert checked.exit_code == 0, checked.stderr
    assert "ok: 0 published entries, 3 pages (1 drafts, 0 scheduled)" in checked.stdout
    built = blog("build", "--no-vectors", cwd=site)
    assert built.exit_code == 0, built.stderr
    assert (site / "var" / "builds" / "current").exists() and f"index {site}/var/index/" in built.stdout


def test_init_refuses_a_non_empty_folder_unless_forced(tmp_path: Path) -> None:
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "todo.txt").write_text("mine\n")
    (folder / ".gitignore").write_text("*.swp\n")
    refused = blog("init", str(folder), cwd=tmp_path)
    assert refused.exit_code == 1 and "is not empty" in refused.stderr and "--force" in refused.stderr
    assert sorted(p.name for p in folder.iterdir()) == [".gitignore", "todo.txt"]
    forced = blog("init", "--force", str(folder), cwd=tmp_path)
    assert forced.exit_code == 0, forced.stderr
    assert (folder / "blog.toml").is_file() and (folder / "todo.txt").read_text() == "mine\n"
    assert (folder / ".gitignore").read_text() == "*.swp\n" and f"kept {folder / '.gitignore'}" in forced.stderr


def test_the_nearest_blog_toml_above_the_working_directory_is_the_site(tmp_path: Path) -> None:
    outer = new_site(tmp_path / "outer", "extra")
    inner = new_site(outer / "drafts" / "inner")
    from_inner = blog("check", cwd=inner / "content" / "pages")
    assert from_inner.exit_code == 0, from_inner.stderr
    assert site_line(from_inner) == f"site: {inner} (found from the working directory)"
    assert ", 3 pages" in from_inner.stdout
    from_outer = blog("check", cwd=outer / "drafts")
    assert from_outer.exit_code == 0, from_outer.stderr
    assert site_line(from_outer) == f"site: {outer} (found from the working directory)"
    assert ", 4 pages" in from_outer.stdout


def test_site_option_and_blog_config_win_over_the_working_directory(tmp_path: Path) -> None:
    here = new_site(tmp_path / "here")
    there = new_site(tmp_path / "there", "extra")
    by_option = blog("--site", str(there), "check", cwd=here)
    assert site_line(by_option) == f"site: {there} (--site)" and ", 4 pages" in by_option.stdout
    by_env = blog("check", cwd=here, BLOG_CONFIG=str(there / "blog.toml"))
    assert site_line(by_env) == f"site: {there} (BLOG_CONFIG)" and ", 4 pages" in by_env.stdout
    both = blog("--site", str(here), "check", cwd=there, BLOG_CONFIG=str(there / "blog.toml"))
    assert site_line(both) == f"site: {here} (--site)" and ", 3 pages" in both.stdout
    not_a_site = blog("--site", str(tmp_path), "check", cwd=here)
    assert not_a_site.exit_code == 1 and "blog init" in not_a_site.stderr and "ok:" not in not_a_site.stdout


@pytest.mark.parametrize("command", [["check"], ["lock"], ["torrc", "--no-verify"]])
def test_outside_any_site_every_command_says_so_and_fails(tmp_path: Path, command: list[str]) -> None:
    above = [p for p in (tmp_path, *tmp_path.parents) if (p / "blog.toml").exists()]
    if above:
        pytest.skip(f"{above[0]}/blog.toml makes the temporary folder part of a site")
    result = blog(*command, cwd=tmp_path)
    assert result.exit_code == 1, result.stdout + result.stderr
    assert f"no blog.toml in {tmp_path.resolve()} or any folder above it: this is not a site" in result.stderr
    assert "blog init DIR" in result.stderr and "--site DIR" in result.stderr
    inside = blog(*command, cwd=new_site(tmp_path / "mine"))
    assert site_line(inside) == f"site: {tmp_path / 'mine'} (found from the working directory)"


def test_the_repository_checkout_is_the_demo_site_from_inside_it() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BLOG_")}
    result = subprocess.run([sys.executable, "-m", "blog.cli", "--data", "/tmp/unused", "check"], cwd=ROOT / "docs",
                            env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert [line for line in result.stderr.splitlines() if line.startswith("site: ")] == [
        f"site: {ROOT} (found from the working directory)"]


def test_serve_runs_its_workers_on_the_site_it_was_given(tmp_path: Path) -> None:
    site = new_site(tmp_path / "served")
    (site / "blog.toml").write_text((site / "blog.toml").read_text().replace("My engineering log", "Served here"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BLOG_")}
    env.update(BLOG_SEMANTIC="0", BLOG_WORKERS="1")
    # Started in the repository checkout, whose own blog.toml is the nearest: --site must win for the
    # workers and the builder too, not only for the command that starts them.
    args = [sys.executable, "-m", "blog.cli", "--site", str(site), "serve", "--no-tor", "--bind", f"127.0.0.1:{port}"]
    with Server(args, tmp_path / "serve.log", port=port, env=env) as server:
        with urllib.request.urlopen(server.url + "/", timeout=10) as response:
            page = response.read().decode()
    assert "<title>Served here" in page, page[:500]


def test_a_sites_folders_are_its_own_never_the_softwares(tmp_path: Path) -> None:
    from blog.config import load_config

    site = tmp_path.resolve()
    settings = site / "blog.toml"
    settings.write_text('title = "Mine"\n')  # no folders named: the defaults, relative to this file
    cfg = load_config(settings, env={})
    assert (cfg.content_dir, cfg.data_dir) == (site / "content", site / "var")
    assert cfg.model_dir == site / "var" / "model" and cfg.onion_key_path == site / "var/onion/hs_ed25519_secret_key"
    moved = load_config(settings, env={"BLOG_DATA_DIR": "/srv/log-data"})
    assert moved.model_dir == Path("/srv/log-data/model")
    assert moved.replace(data_dir=site / "d").model_dir == site / "d" / "model"
    settings.write_text('model_dir = "../shared/model"\n')  # one model for several sites
    shared = load_config(settings, env={})
    assert shared.model_dir == site / "../shared/model"
    assert shared.replace(data_dir=site / "d").model_dir == shared.model_dir
