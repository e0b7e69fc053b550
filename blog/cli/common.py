"""What every `blog` command shares: the site's settings, and how content problems are shown."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import click

from blog.config import SETTINGS_NAME, Config, ConfigError, NoSiteError, SiteLocation, find_site, load_config
from blog.content import ContentError

_HOW = {"option": "--site", "BLOG_CONFIG": "BLOG_CONFIG", "found": "found from the working directory"}


def _state(ctx: click.Context) -> dict[str, Any]:
    root = ctx.find_root()
    if root.obj is None:
        root.obj = {}
    state: dict[str, Any] = root.obj
    return state


def site_of(ctx: click.Context) -> SiteLocation:
    """Return the site this invocation works on, saying which on stderr the first time it is asked."""
    state = _state(ctx)
    if "location" not in state:
        try:
            location = find_site(state.get("site"))
        except NoSiteError as exc:
            raise click.ClickException(
                f"{exc}: this is not a site. Create one with `blog init DIR` and run blog inside it, or name "
                "one with `blog --site DIR ...` (or BLOG_CONFIG=DIR/blog.toml)") from exc
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from exc
        shown = location.folder if location.path.name == SETTINGS_NAME else location.path
        click.echo(f"site: {shown} ({_HOW[location.how]})", err=True)
        state["location"] = location
    location: SiteLocation = state["location"]
    return location


def config_of(ctx: click.Context, site_optional: bool = False) -> Config:
    """Return the settings for this invocation (`--content`/`--data` given to `blog` come first).

    A command that also works with no site of its own (a client of someone else's log) passes
    site_optional: outside any site it gets the defaults and the BLOG_* variables, and no "site:" line.
    """
    state = _state(ctx)
    overrides = {key: state.get(key) for key in ("content_dir", "data_dir")}
    try:
        if site_optional and "location" not in state:
            try:
                find_site(state.get("site"))
            except NoSiteError:
                return load_config(Path(os.devnull), **overrides)  # an empty settings file: the defaults
        return load_config(site_of(ctx).path, **overrides)
    except ConfigError as exc:
        raise click.ClickException(f"{exc} (fix the setting in blog.toml or the BLOG_* variable)") from exc


def echo_problems(problems: Iterable[ContentError]) -> None:
    """Print each problem on its own line of stderr, as `path:line: what (fix)`."""
    for problem in problems:
        click.echo(str(problem), err=True)
