"""The `blog lock` and `blog upstream verify` commands, and the honesty part of `blog check`."""

from __future__ import annotations

import click

from blog.cli.common import config_of, echo_problems
from blog.config import Config
from blog.content import ContentError, ContentProblems, Site, load_site, utcnow
from blog.honesty import HonestyError
from blog.honesty.annotate import problems as honesty_problems
from blog.honesty.claims import PullState, disagreements, read_cache, write_cache
from blog.honesty.revisions import record, unrecorded
from blog.honesty.revlog import chain_notes, record_chain
from blog.honesty.upstream import parse_overrides, site_pulls, verify


def _site(cfg: Config) -> Site:
    try:
        return load_site(cfg.content_dir)
    except ContentProblems as problems:
        echo_problems(problems.problems)
        raise click.ClickException("fix the content first (`blog check`)") from problems


def _verify(cfg: Config, site: Site, socks: str | None) -> dict[str, PullState]:
    pulls = site_pulls(site)
    if not pulls:
        return {}
    click.echo(f"asking the forges about {len(pulls)} pull request(s) through tor at {socks or cfg.tor_socks}",
               err=True)
    try:
        return verify(pulls, socks or cfg.tor_socks, parse_overrides(cfg.upstream_api_override), utcnow())
    except HonestyError as exc:
        raise click.ClickException(f"{exc}; nothing was recorded") from exc


def check_problems(cfg: Config, site: Site, upstream: bool = False) -> list[ContentError]:
    """Return the honesty problems of a content tree that passed check_site; note unrecorded entries."""
    now = utcnow()
    found = honesty_problems(site, cfg.content_dir, now)
    chained, note = chain_notes(cfg.content_dir)
    found += chained
    if note:
        click.echo(note)
    if not found:
        try:
            fresh = unrecorded(site, cfg.content_dir, now)
        except HonestyError as exc:
            raise click.ClickException(str(exc)) from exc
        if fresh:
            click.echo(f"note: {len(fresh)} published entr{'y is' if len(fresh) == 1 else 'ies are'} not recorded "
                       f"in published.lock ({', '.join(e.slug for e in fresh)}): run `blog lock` and commit it")
    if upstream:
        found += disagreements(site, _verify(cfg, site, None))
    return found


@click.command("lock", help="Record newly published entries and dated updates in content/published.lock.")
@click.pass_context
def lock_command(ctx: click.Context) -> None:
    cfg = config_of(ctx)
    site = _site(cfg)
    try:
        changes = record(site, cfg.content_dir, utcnow())
        changes += record_chain(site, cfg.content_dir)
    except HonestyError as exc:
        raise click.ClickException(str(exc)) from exc
    for change in changes:
        click.echo(change)
    click.echo(f"{len(changes)} change(s) recorded" if changes else "nothing to record: the lock is up to date")


@click.group(help="Upstream pull and merge requests cited by entries.")
def upstream() -> None:
    pass


@upstream.command("verify", help="Ask each forge (through tor only) whether cited pull requests were merged.")
@click.option("--socks", help="Tor's SOCKS port (default: tor_socks).")
@click.pass_context
def verify_command(ctx: click.Context, socks: str | None) -> None:
    cfg = config_of(ctx)
    site = _site(cfg)
    states = _verify(cfg, site, socks)
    try:
        cache = {**read_cache(cfg.content_dir), **states}
        path = write_cache(cfg.content_dir, cache)
    except HonestyError as exc:
        raise click.ClickException(str(exc)) from exc
    for url, state in sorted(states.items()):
        click.echo(f"{url}: {state.label()}")
    wrong = disagreements(site, states)
    for problem in wrong:
        click.echo(str(problem), err=True)
    click.echo(f"recorded {len(states)} check(s) in {path}")
    if wrong:
        raise click.ClickException(f"{len(wrong)} claim(s) disagree with the forge")


def register(cli: click.Group) -> None:
    """Add the lock and upstream commands to the blog CLI."""
    cli.add_command(lock_command)
    cli.add_command(upstream)
