"""The `blog` command: the only package that wires the rooms together.

Each module holds one family of commands and a `register(group)` that adds them; the group below
registers every one of them by name, so a missing module fails at once instead of hiding its commands.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import click

from blog.cli import honesty, init, linkcheck, mcp, onionbalance, preview, site, tor, verify, weights


@click.group(help="Serve one operator's engineering log to readers (web, onion) and agents (MCP).\n\n"
                  "The site is the folder given by --site, else the blog.toml named by BLOG_CONFIG, else the "
                  "nearest blog.toml in the working directory or above it. `blog init DIR` creates one.")
@click.option("--site", "site", type=click.Path(path_type=Path, exists=True),
              help="The site's folder (holding blog.toml); default: found from the working directory.")
@click.option("--content", "content_dir", type=click.Path(path_type=Path), help="Content folder (content_dir).")
@click.option("--data", "data_dir", type=click.Path(path_type=Path), help="Data folder for builds, index, keys.")
@click.option("-v", "--verbose", is_flag=True, help="Log more.")
@click.pass_context
def cli(ctx: click.Context, site: Path | None, content_dir: Path | None, data_dir: Path | None,
        verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%Y-%m-%dT%H:%M:%SZ")
    logging.Formatter.converter = time.gmtime  # log times in UTC, like everything else
    # stem logs every control command at DEBUG; that is noise unless asked for
    logging.getLogger("stem").setLevel(logging.DEBUG if verbose else logging.WARNING)
    ctx.obj = {"site": site, "content_dir": content_dir, "data_dir": data_dir}


init.register(cli)
site.register(cli)
preview.register(cli)
tor.register(cli)
linkcheck.register(cli)
weights.register(cli)
mcp.register(cli)
honesty.register(cli)
onionbalance.register(cli)
verify.register(cli)
