"""`blog verify ADDRESS`: check a site's signed revision log and what it serves, through Tor, as any reader can."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import httpx2

from blog.cli.common import config_of
from blog.honesty.verify import Fetch, Report, verify_citation, verify_site
from blog.tor import egress, identity
from blog.tor.errors import EgressError

LOG_LIMIT = 64 * 2**20  # bytes: a log of 100,000 revisions is about 40 MB
ANSWER_LIMIT = 8 * 2**20  # bytes of any other answer (a text, a page, a file: files are at most 2 MiB)


class Unreachable(click.ClickException):
    """The site did not answer through tor: nothing could be verified."""


def onion_fetcher(client: httpx2.Client, base: str) -> Fetch:
    """Return a Fetch that GETs paths under base (the onion service), refusing an answer beyond its byte limit."""

    def fetch(path: str) -> tuple[int, bytes]:
        limit = LOG_LIMIT if path == "/revisions.json" else ANSWER_LIMIT
        try:
            with client.stream("GET", base + path) as response:
                data = bytearray()
                for chunk in response.iter_bytes():
                    data += chunk
                    if len(data) > limit:
                        raise Unreachable(f"{path} sent more than {limit // 2**20} MiB: a hostile or broken "
                                          "server; nothing more was read")
                return response.status_code, bytes(data)
        except EgressError as exc:
            raise Unreachable(f"{exc}; nothing was verified") from exc
        except httpx2.HTTPError as exc:
            raise Unreachable(f"{base}{path} did not answer through tor ({exc}): is the address right and the "
                              "site up? Nothing was verified") from exc

    return fetch


def _print(report: Report, what: str) -> None:
    for problem in report.problems:
        click.echo(problem)
    if report.problems:
        raise click.ClickException(f"{len(report.problems)} problem(s) in {what}")
    signed = f"signed by {report.signed_by}" if report.signed_by else "unsigned"
    click.echo(f"ok: {what} holds: {report.size} records, head {report.head}, {signed}")


def _stored(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise click.ClickException(f"{path} is not a stored tool answer ({exc}): save search_blog's or "
                                   "get_entry's structured answer as JSON") from exc
    if not isinstance(value, dict):
        raise click.ClickException(f"{path} holds no JSON object: save the tool's structured answer")
    return value.get("structuredContent", value) if isinstance(value.get("structuredContent"), dict) else value


@click.command("verify")
@click.argument("address")
@click.option("--since", help="A log head seen earlier: check that the log still holds it (only appended to).")
@click.option("--citation", "citation", type=click.Path(path_type=Path, dir_okay=False),
              help="A stored search_blog or get_entry answer: check the text it quotes instead of the whole site.")
@click.option("--socks", help="Tor's SOCKS port (default: tor_socks).")
@click.pass_context
def verify_command(ctx: click.Context, address: str, since: str | None, citation: Path | None,
                   socks: str | None) -> None:
    """Check an onion site's signed revision log, and that what it serves is what the log records."""
    try:
        identity.public_key_of(address)
    except identity.AddressError as exc:
        raise click.ClickException(f"{exc}: blog verify needs the site's onion address") from exc
    socks = socks or config_of(ctx, site_optional=True).tor_socks
    stored = _stored(citation) if citation else None
    name = f"{identity.normalise(address)}.onion"
    click.echo(f"verifying {name} through tor at {socks}", err=True)
    with egress.client(socks, follow_redirects=False) as client:
        fetch = onion_fetcher(client, f"http://{name}")
        if stored is not None:
            _print(verify_citation(fetch, address, stored), f"the citation from {citation}")
        else:
            _print(verify_site(fetch, address, since), f"the revision log of {name}")


def register(cli: click.Group) -> None:
    """Add `blog verify` to the blog CLI."""
    cli.add_command(verify_command)
