"""`blog init DIR`: a new site of one's own, which `blog check` and `blog build` accept as it is."""

from __future__ import annotations

from pathlib import Path

import click

from blog.cli.site import draft_entry
from blog.honesty.lock import lock_path, write_lock

# The files every new site starts from, copied as they are (`gitignore` becomes `.gitignore`: a dotfile
# inside the package would be easy to lose when it is packaged).
SKELETON = Path(__file__).resolve().parent / "skeleton"
INTRO = ("This entry is a draft: `blog build` and `blog serve` leave it out until you remove `draft: true`. "
         "Write what you did, the exact command and output, the fix and the figure; then `blog check`, "
         "`blog build`, and `blog lock` to record it once it is published.\n\n")


def _copy_skeleton(folder: Path) -> list[Path]:
    """Copy the skeleton into folder, keeping any file already there; return the files kept."""
    kept = []
    for source in sorted(p for p in SKELETON.rglob("*") if p.is_file()):
        relative = source.relative_to(SKELETON)
        target = folder / (".gitignore" if relative == Path("gitignore") else relative)
        if target.exists():
            kept.append(target)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source.read_bytes())
    return kept


@click.command()
@click.argument("folder", type=click.Path(path_type=Path, file_okay=False))
@click.option("--force", is_flag=True, help="Add the site's files to a folder that is not empty (keeping its files).")
def init(folder: Path, force: bool) -> None:
    """Create a new site in FOLDER: blog.toml, and content/ with a draft entry and pages to rewrite."""
    if folder.exists() and any(folder.iterdir()) and not force:
        raise click.ClickException(f"{folder} is not empty: name a new or empty folder, or pass --force to add "
                                   "the site's files beside what is there (files already there are kept)")
    folder = folder.resolve()
    click.echo(f"site: {folder} (new)", err=True)
    folder.mkdir(parents=True, exist_ok=True)
    kept = _copy_skeleton(folder)
    content = folder / "content"
    if not lock_path(content).exists():
        write_lock(content, {})  # an empty lock: nothing is published yet
    if not any((content / "log").glob("*.md")):
        draft_entry(content, "My first entry", intro=INTRO)
    for path in kept:
        click.echo(f"kept {path} as it was", err=True)
    click.echo(f"created the site {folder}:\n"
               "  blog.toml                 the settings (title, addresses, tor)\n"
               "  content/log/              entries, one Markdown file each (a draft to start)\n"
               "  content/pages/            start-here, about and honesty: rewrite them\n"
               "  content/reading-order.yml what a first-time reader is shown first\n"
               "  content/published.lock    published entries as recorded by `blog lock` (commit it)\n"
               f"next: cd {folder} && blog check && blog serve   (a new entry: blog new \"Title\"; search by "
               "meaning too: blog model fetch, once)")


def register(cli: click.Group) -> None:
    """Add `blog init` to the blog CLI."""
    cli.add_command(init)
