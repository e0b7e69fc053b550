"""Which tor a config asks for: none, a private one this process launches, or a running one to attach to."""

from __future__ import annotations

import shutil

from blog.config import Config
from blog.tor.errors import ControlNotSetError
from blog.tor.onion import OnionService


def control_for(cfg: Config) -> str | None:
    """Return where this config's tor is controlled, or None when no tor is configured or installed."""
    if cfg.tor_mode == "off":
        return None
    if cfg.tor_mode == "attach" or (cfg.tor_mode == "auto" and cfg.tor_control):
        if not cfg.tor_control:
            raise ControlNotSetError
        return cfg.tor_control
    if cfg.tor_mode == "auto" and shutil.which("tor") is None:
        return None
    return str(cfg.data_dir / "tor" / "control")  # the private tor's socket, while the app runs


def onion_service_for(cfg: Config, target: str) -> OnionService | None:
    """Build the OnionService the config asks for (None when tor_mode is off or auto finds no tor)."""
    control = control_for(cfg)
    if control is None:
        return None
    launch = cfg.tor_mode == "launch" or (cfg.tor_mode == "auto" and not cfg.tor_control)
    return OnionService(
        control=None if launch else control, data_dir=cfg.data_dir, key_path=cfg.onion_key_path,
        target=target, max_streams=cfg.onion_max_streams, single_hop=cfg.onion_single_hop,
    )
