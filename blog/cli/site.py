"""`blog check`, `build`, `reload`, `index`, `new` and `serve`: the site itself; `register(cli)` adds them."""

from __future__ import annotations

import errno
import ipaddress
import os
import re
import shutil
import sys
import time
from pathlib import Path

import click

from blog import builder, pipeline
from blog.builder import ONION_TARGET
from blog.builds import Build, BuildError, current_pointer
from blog.cli.common import config_of, echo_problems, site_of
from blog.cli.honesty import check_problems
from blog.config import Config
from blog.content import ContentProblems, check_site, utcnow
from blog.files import FileSet, check_files
from blog.index import semantic
from blog.index.results import SearchError
from blog.index.semantic import wire
from blog.tor.errors import TorError
from blog.tor.identity import address_of
from blog.tor.keys import load_or_create_key
from blog.tor.mode import onion_service_for


@click.command()
@click.option("--upstream", is_flag=True, help="Also ask the forges, through tor, whether merge claims hold.")
@click.pass_context
def check(ctx: click.Context, upstream: bool) -> None:
    """Check every file under content/ and print every problem, one per line."""
    cfg = config_of(ctx)
    site, problems = check_site(cfg.content_dir)
    files = FileSet()
    if site is not None:
        files, found = check_files(site)
        problems = check_problems(cfg, site, upstream) + found
    for asset in files.assets.values():
        if asset.stripped:  # what a build removes before it serves the file: the operator should know
            click.echo(f"{cfg.content_dir.name}/{asset.path}: stripped {', '.join(asset.stripped)}")
    echo_problems(problems)
    if problems:
        raise click.ClickException(f"{len(problems)} problem(s) in {cfg.content_dir}; nothing was published")
    assert site is not None
    now = utcnow()
    click.echo(f"ok: {len(site.published(now))} published entries, {len(site.pages)} pages "
               f"({sum(e.draft for e in site.entries)} drafts, "
               f"{sum(1 for e in site.entries if not e.draft and e.date > now)} scheduled)"
               + (f", {len(files.assets)} linked files" if files.assets else ""))


def _publish(cfg: Config, force: bool = False, vectors: bool = False) -> None:
    try:
        build = pipeline.publish(cfg, force=force)
    except ContentProblems as problems:
        echo_problems(problems.problems)
        count = len(problems.problems)
        raise click.ClickException(f"{count} problem(s); the site keeps serving its last good build") from problems
    except (BuildError, SearchError) as exc:  # a full or read-only disk: the old build and index stay current
        raise click.ClickException(f"{exc}; the site keeps serving its last good build") from exc
    click.echo(f"build {build.id} is current ({len(build.site.entries)} entries, index {build.index_dir})")
    head = build.revlog
    if head is not None:  # what readers can check the site against (docs/honesty.md)
        signer = f"signed by {head.address}.onion" if head.signature else "unsigned: no onion key"
        click.echo(f"revision log: {head.size} records, head {head.head}, {signer}")
    if vectors:
        _embed(cfg, build)


def _embed(cfg: Config, build: Build) -> None:
    """Embed the new build's changed blocks for the semantic ranker, showing progress on long work."""
    started = time.monotonic()
    shown = [0.0]

    def progress(done: int, total: int) -> None:
        if total and (time.monotonic() - shown[0] >= 2 or done == total):
            shown[0] = time.monotonic()
            click.echo(f"vectors: {done} of {total} new blocks embedded", err=True)

    count = semantic.embed(cfg, build, progress)
    if count is None:
        click.echo("vectors: no model installed (`blog model fetch` installs it); search ranks by words only", err=True)
    else:
        click.echo(f"vectors for {count} blocks ready in {time.monotonic() - started:.1f} s")


@click.command()
@click.option("--force", is_flag=True, help="Rebuild even when the content has not changed.")
@click.option("--vectors/--no-vectors", default=True, show_default=True,
              help="Embed changed blocks for the semantic ranker now (a served site's ranker does it anyway).")
@click.pass_context
def build(ctx: click.Context, force: bool, vectors: bool) -> None:
    """Check, render and index the content, then switch the running site to it."""
    _publish(config_of(ctx), force, vectors)


@click.command()
@click.pass_context
def reload(ctx: click.Context) -> None:
    """Publish changed content; running workers serve it within a second (errors keep the last good build)."""
    _publish(config_of(ctx))


@click.command(name="index")
@click.pass_context
def index_cmd(ctx: click.Context) -> None:
    """Rebuild the search index from content/, and the vectors of changed blocks."""
    _publish(config_of(ctx), force=True, vectors=True)


@click.command()
@click.argument("title")
@click.option("--tag", "tags", multiple=True, help="A tag (repeatable).")
@click.pass_context
def new(ctx: click.Context, title: str, tags: tuple[str, ...]) -> None:
    """Create today's entry from a template and print its path."""
    cfg = config_of(ctx)
    try:
        path = draft_entry(cfg.content_dir, title, tags)
    except FileExistsError as exc:
        raise click.ClickException(f"{exc.filename} exists already; pick another title") from exc
    click.echo(path)


def draft_entry(content_dir: Path, title: str, tags: tuple[str, ...] = (), intro: str = "") -> Path:
    """Write today's draft entry from the template and return its path (FileExistsError if it is there)."""
    now = utcnow().replace(microsecond=0)
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:60] or "entry"
    path = content_dir / "log" / f"{now:%Y-%m-%d}-{slug}.md"
    if path.exists():
        raise FileExistsError(errno.EEXIST, "exists already", str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    tag_list = ", ".join(tags) or "operations"
    path.write_text(
        f'---\ntitle: "{title}"\ndate: {now:%Y-%m-%dT%H:%M:%SZ}\ntags: [{tag_list}]\n'
        f'summary: "One sentence: what broke, what fixed it."\ndraft: true\n---\n\n{intro}'
        "## What I was doing\n\n## What happened\n\n```console\n$ the exact command\nthe exact output\n```\n\n"
        "## The fix\n\n## The figure\n", encoding="utf-8")
    return path


@click.command()
@click.pass_context
def status(ctx: click.Context) -> None:
    """Show the build being served and whether the semantic process is up, which build, and its vectors."""
    cfg = config_of(ctx)
    try:
        pointer = current_pointer(cfg.builds_dir)
    except BuildError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"build:     {pointer['build'] if pointer else '(none yet: run `blog build`)'}")
    path = wire.socket_path(cfg)
    if not cfg.semantic:
        click.echo("semantic:  off (semantic = false): search ranks by words only")
        return
    try:
        found = wire.status(path)
    except wire.Failed as exc:
        left = ""
        if path.exists():
            left = (" (it accepts connections but does not answer: stopped, or busy)" if wire.listening(path)
                    else " (the socket file is left from a stopped site: nothing listens there)")
        click.echo(f"semantic:  not answering at {path}: {exc}{left}")
        click.echo("           a served site ranks by words until it answers; `blog mcp` loads the model itself")
        return
    click.echo(f"semantic:  up (pid {found.get('pid')}) at {path}")
    if found.get("starting"):
        click.echo("model:     loading; search ranks by words until it is loaded")
        return
    if not found.get("model"):
        click.echo(f"model:     none: {found.get('why')}")
        return
    click.echo(f"model:     {found.get('model')}")
    current, count, embedding = found.get("current"), found.get("vectors"), found.get("embedding")
    if count is not None:
        click.echo(f"vectors:   {count} blocks of build {current}: search ranks by words and meaning")
    elif isinstance(embedding, dict):
        click.echo(f"vectors:   embedding build {embedding.get('build')}: {embedding.get('done')} of "
                   f"{embedding.get('total')} new blocks; search ranks by words until they are done")
    else:
        click.echo(f"vectors:   none yet for build {current}; search ranks by words until they are made")


def _check_bind(cfg: Config, bind: str) -> None:
    if bind.startswith("unix:"):
        return
    host = bind.rsplit(":", 1)[0].strip("[]")
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback and not cfg.allow_public_bind:
        raise click.ClickException(
            f"refusing to listen on {bind}: readers reach this site through tor or a reverse proxy on the "
            "same machine. Bind to 127.0.0.1 or a unix socket, or set allow_public_bind = true if you mean it.")


@click.command()
@click.option("--bind", help="Address to listen on (default from config: 127.0.0.1:8000).")
@click.option("--workers", type=int, help="Gunicorn worker processes.")
@click.option("--tor/--no-tor", "use_tor", default=None, help="Publish the onion service (default: tor_mode).")
@click.pass_context
def serve(ctx: click.Context, bind: str | None, workers: int | None, use_tor: bool | None) -> None:
    """Build if needed, publish the onion service when tor is available, and run gunicorn."""
    cfg = config_of(ctx)
    settings = site_of(ctx).path  # the workers, the builder and the ranker read the same site's settings
    bind = bind or cfg.bind
    _check_bind(cfg, bind)
    # The onion key first: the build then signs its revision log with it, and the master's first look finds
    # nothing to publish again.
    target = _onion_target(cfg, bind, use_tor)
    try:
        build = builder.prepare(cfg)  # changed content, or the last good build when it has problems
        click.echo(f"serving build {build.id}: {len(build.site.published())} entries")
    except ContentProblems as problems:
        echo_problems(problems.problems)
        raise click.ClickException("the content has problems and there is no earlier build to serve") from problems
    env = dict(os.environ, BLOG_CONFIG=str(settings), BLOG_CONTENT_DIR=str(cfg.content_dir),
               BLOG_DATA_DIR=str(cfg.data_dir))
    if workers:
        env["BLOG_WORKERS"] = str(workers)
    command = [sys.executable, "-m", "gunicorn", "-c", "python:blog.gunicorn_conf", "--bind", bind,
               "--no-control-socket", "blog.web:create_app()"]
    if target is not None:
        env[ONION_TARGET] = target  # the builder publishes the onion and holds tor's control connection
    else:
        env.pop(ONION_TARGET, None)
    os.execve(sys.executable, command, env)  # noqa: S606 - become gunicorn, so systemd's MainPID is its master


def _onion_target(cfg: Config, bind: str, use_tor: bool | None) -> str | None:
    """Return where the onion service should point when it is to be published, and say its address.

    `blog serve` becomes gunicorn rather than waiting beside it: the builder, a process the served site has
    anyway, publishes the service and keeps tor's control connection (blog/builder.py). The address comes
    from the key, made here when there is none, so it is known before tor is up and stays across restarts.
    """
    mode = cfg.tor_mode
    if use_tor is False or mode == "off":
        return None
    if mode == "auto" and not cfg.tor_control and not shutil.which("tor"):
        click.echo("no tor binary: serving without an onion service (apt-get install tor to add one)")
        return None
    target = bind if bind.startswith("unix:") else bind.replace("localhost", "127.0.0.1")
    try:
        if onion_service_for(cfg, target) is None:
            return None
        address = address_of(load_or_create_key(cfg.onion_key_path))
    except TorError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"onion service: http://{address}.onion/  (key {cfg.onion_key_path}; same address after a "
               "restart; the builder publishes it once tor is up)")
    return target


def register(cli: click.Group) -> None:
    """Add the site's own commands to the blog CLI."""
    for command in (check, build, reload, index_cmd, new, serve, status):
        cli.add_command(command)
