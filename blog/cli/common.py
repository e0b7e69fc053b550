"""What every `blog` command shares: the site's settings, and how content problems are shown."""

from __future__ import annotations

from collections.abc import Iterable

import click

from blog.config import Config, ConfigError, load_config
from blog.content import ContentError


def config_of(ctx: click.Context) -> Config:
    """Return the settings for this invocation (`--content`/`--data` given to `blog` come first)."""
    try:
        return load_config(**(ctx.find_root().obj or {}))
    except ConfigError as exc:
        raise click.ClickException(f"{exc} (fix the setting in blog.toml or the BLOG_* variable)") from exc


def echo_problems(problems: Iterable[ContentError]) -> None:
    """Print each problem on its own line of stderr, as `path:line: what (fix)`."""
    for problem in problems:
        click.echo(str(problem), err=True)
