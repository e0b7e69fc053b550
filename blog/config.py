"""Site settings: one small TOML file, every key overridable by a BLOG_<KEY> environment variable.

A site is a folder holding `blog.toml`; which one a process works on is found the way git finds its
repository (`find_site`): the folder named on the command line, else the file named by BLOG_CONFIG, else
`blog.toml` in the working directory or its nearest parent.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SETTINGS_NAME = "blog.toml"


class ConfigError(Exception):
    """A setting is missing, mistyped or unreadable."""


class NoSiteError(ConfigError):
    """No site's settings were named and none lie in the working directory or above it."""


@dataclass(frozen=True)
class SiteLocation:
    """The settings file a process works with, and how it was found."""

    path: Path
    how: str  # "option" (named on the command line), "BLOG_CONFIG", or "found" (working directory or a parent)

    @property
    def folder(self) -> Path:
        """Return the site's folder: the one its settings file sits in."""
        return self.path.resolve().parent


def find_site(site: Path | None = None, env: dict[str, str] | None = None, cwd: Path | None = None) -> SiteLocation:
    """Return the site's settings: `site` (a folder or a file), else BLOG_CONFIG, else the nearest blog.toml."""
    env = dict(os.environ) if env is None else env
    if site is not None:
        path = site / SETTINGS_NAME if site.is_dir() else site
        if not path.is_file():
            raise NoSiteError(f"{site} has no {SETTINGS_NAME}")
        return SiteLocation(path.resolve(), "option")
    if env.get("BLOG_CONFIG"):
        path = Path(env["BLOG_CONFIG"])
        if not path.exists():
            raise ConfigError(f"BLOG_CONFIG names {path}, which does not exist")
        return SiteLocation(path.absolute(), "BLOG_CONFIG")
    start = (cwd or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        if (folder / SETTINGS_NAME).is_file():
            return SiteLocation(folder / SETTINGS_NAME, "found")
    raise NoSiteError(f"no {SETTINGS_NAME} in {start} or any folder above it")


@dataclass(frozen=True)
class Config:
    """Everything the rooms need to know about this site and this machine."""

    title: str = "The engineering log"
    author: str = "the operator"
    description: str = "Dated entries about real systems: the errors, the fixes, the figures."
    base_url: str = ""  # clearnet, e.g. https://log.example.org; "" when onion-only
    onion_address: str = ""  # override; otherwise learnt from tor at run time
    # Relative paths are relative to the settings file's folder (load_config resolves them), never to where
    # the software is installed: an installed wheel has no content and no data of its own.
    content_dir: Path = Path("content")
    data_dir: Path = Path("var")
    model_dir: Path = field(default=Path())  # the semantic ranker's model; default data_dir/model (`blog model fetch`)
    semantic: bool = True  # rank by meaning beside words when the model is installed (blog/index/semantic/)
    bind: str = "127.0.0.1:8000"
    workers: int = 2
    allow_public_bind: bool = False
    tor_mode: str = "auto"  # auto | launch | attach | off
    tor_control: str = ""  # "" | /run/tor/control | 127.0.0.1:9051
    tor_socks: str = "127.0.0.1:9050"
    onion_key_path: Path = field(default=Path())
    onion_single_hop: bool = False
    onion_max_streams: int = 32
    page_size: int = 10
    mcp_enabled: bool = True
    upstream_api_override: str = ""  # tests only: "github.com=http://127.0.0.1:PORT,..." (forge API bases)

    def __post_init__(self) -> None:
        if self.onion_key_path == Path():
            object.__setattr__(self, "onion_key_path", self.data_dir / "onion" / "hs_ed25519_secret_key")
        if self.model_dir == Path():
            object.__setattr__(self, "model_dir", self.data_dir / "model")

    @property
    def builds_dir(self) -> Path:
        return self.data_dir / "builds"

    def replace(self, **changes: Any) -> Config:
        """Return a copy with some settings changed."""
        if "data_dir" in changes:  # what follows the data folder moves with it, unless given too
            for name in ("onion_key_path", "model_dir"):
                if name not in changes and getattr(self, name) == getattr(Config(data_dir=self.data_dir), name):
                    changes[name] = Path()
        return dataclasses.replace(self, **changes)


_FIELDS = {f.name: f for f in dataclasses.fields(Config)}
_TOR_MODES = ("auto", "launch", "attach", "off")


def _coerce(name: str, value: Any, origin: str) -> Any:
    kind = _FIELDS[name].type
    try:
        if kind == "Path":
            return Path(os.path.expanduser(str(value)))
        if kind == "bool":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(value)
        if kind == "int":
            return int(value)
        return str(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{origin}: {name} = {value!r} is not a valid {kind}") from exc


def load_config(path: Path | None = None, env: dict[str, str] | None = None, **overrides: Any) -> Config:
    """Read the config file (by default the site `find_site` finds), then BLOG_* variables, then overrides."""
    env = dict(os.environ) if env is None else env
    path = path or find_site(env=env).path
    values: dict[str, Any] = {}
    base: Path | None = None  # what relative paths are relative to: the settings file's folder, else the cwd
    if path.exists():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read the settings: {exc}") from exc
        if path.is_file():
            base = path.resolve().parent
        for key, value in data.items():
            if key not in _FIELDS:
                raise ConfigError(f"{path}: unknown setting {key!r} (known: {', '.join(sorted(_FIELDS))})")
            values[key] = _coerce(key, value, str(path))
            if isinstance(values[key], Path) and not values[key].is_absolute():
                values[key] = (base or Path.cwd()) / values[key]
    elif "BLOG_CONFIG" in env:
        raise ConfigError(f"BLOG_CONFIG names {path}, which does not exist")
    for key in _FIELDS:
        name = f"BLOG_{key.upper()}"
        if name in env:
            values[key] = _coerce(key, env[name], name)
    for key, value in overrides.items():
        if value is not None:
            values[key] = _coerce(key, value, "option")
    for key in ("content_dir", "data_dir"):
        if key not in values:
            values[key] = (base or Path.cwd()) / _FIELDS[key].default
    config = Config(**values)
    if config.tor_mode not in _TOR_MODES:
        raise ConfigError(f"tor_mode = {config.tor_mode!r}: use one of {', '.join(_TOR_MODES)}")
    return config
