"""Ask the forges, through Tor egress only, whether the pull requests an entry cites were merged."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterable

import httpx2

from blog.content import Site
from blog.honesty import HonestyError
from blog.honesty.claims import PullState, entry_claims
from blog.honesty.forges import PullRequest, parse_state
from blog.tor import egress
from blog.tor.errors import EgressError

log = logging.getLogger(__name__)

ATTEMPTS = 3
RETRY_PAUSE = 2.0


def parse_overrides(text: str) -> dict[str, str]:
    """Parse `host=http://127.0.0.1:PORT,host2=...` (the upstream_api_override setting)."""
    overrides = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        host, sep, base = item.partition("=")
        if not sep or not host.strip() or not base.strip().startswith(("http://", "https://")):
            raise HonestyError(f"upstream_api_override item {item!r} must be HOST=http(s)://BASE, "
                               "e.g. github.com=http://127.0.0.1:8080")
        overrides[host.strip()] = base.strip()
    return overrides


def site_pulls(site: Site) -> list[PullRequest]:
    """Return every distinct well-formed upstream link of the site, in a stable order."""
    pulls = {claim.pull.url: claim.pull for entry in site.entries for claim in entry_claims(entry)[0]}
    return [pulls[url] for url in sorted(pulls)]


def check_pull(client: httpx2.Client, pull: PullRequest, overrides: dict[str, str],
               now: dt.datetime) -> PullState:
    """Fetch one pull request's state from its forge's public API."""
    url = pull.api_url(overrides)
    for attempt in range(1, ATTEMPTS + 1):
        try:
            response = client.get(url, headers={"Accept": "application/json"})
            break
        except EgressError as exc:  # tor itself is unreachable: retrying would not help
            raise HonestyError(f"cannot ask {pull.host} about {pull.url}: {exc}") from exc
        except httpx2.HTTPError as exc:
            # A fresh circuit through a slow exit fails now and then; a few tries tell that from a dead forge.
            if attempt == ATTEMPTS:
                raise HonestyError(f"{pull.host} did not answer for {pull.url} through tor after {ATTEMPTS} "
                                   f"tries ({type(exc).__name__}: {exc}): try again later") from exc
            log.info("%s: attempt %d failed (%s), retrying", pull.host, attempt, exc)
            time.sleep(RETRY_PAUSE)
    if response.status_code != 200:
        raise HonestyError(f"{pull.host} answered {response.status_code} for {url}: check the URL in the entry "
                           "(a private repository cannot be verified)")
    try:
        data = response.json()
    except ValueError as exc:
        raise HonestyError(f"{pull.host} answered {url} with something other than JSON") from exc
    state, merged_at = parse_state(pull, data)
    log.info("%s: %s%s", pull.url, state, f" {merged_at:%Y-%m-%d}" if merged_at else "")
    return PullState(pull.url, state, merged_at, now)


def verify(pulls: Iterable[PullRequest], socks: str, overrides: dict[str, str],
           now: dt.datetime) -> dict[str, PullState]:
    """Check every pull request through tor at socks (HOST:PORT); fail closed when tor is unreachable."""
    try:
        client = egress.client(socks)
    except EgressError as exc:
        raise HonestyError(str(exc)) from exc
    with client:
        return {pull.url: check_pull(client, pull, overrides, now) for pull in pulls}
