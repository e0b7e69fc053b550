"""The README documents every setting and every command (a missing one fails here, not in a reader's hands)."""

from __future__ import annotations

import dataclasses

import click

from blog.cli import cli
from blog.config import Config
from tests.conftest import ROOT

README = (ROOT / "README.md").read_text()


def test_every_setting_is_in_the_readme() -> None:
    missing = [f.name for f in dataclasses.fields(Config) if f"`{f.name}`" not in README]
    assert not missing, f"settings missing from the README's configuration table: {missing}"


def test_every_command_is_in_the_readme() -> None:
    names = []
    for name, command in cli.commands.items():
        if isinstance(command, click.Group):
            names += [f"blog {name} {sub}" for sub in command.commands]
        else:
            names.append(f"blog {name}")
    missing = [n for n in names if n not in README]
    assert not missing, f"commands missing from the README: {missing}"
