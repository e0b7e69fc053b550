"""`python -m blog.cli`: the `blog` command, for when the script is not on PATH."""

from blog.cli import cli

cli()
