"""The Tor room's exceptions: one class per failure an operator can meet, each saying what to do."""

from __future__ import annotations


class TorError(Exception):
    """Base of every error the Tor room raises; the message says how to fix it."""


class TorNotInstalledError(TorError):
    """The tor binary is not on PATH."""

    def __init__(self, binary: str = "tor") -> None:
        super().__init__(
            f"the tor binary {binary!r} was not found: install it with `apt-get install tor`, "
            "or set tor_mode = \"off\" to serve without an onion service"
        )


class ControlNotSetError(TorError):
    """tor_mode = attach, but no tor_control says where the running tor is controlled."""

    def __init__(self) -> None:
        super().__init__("tor_mode = attach needs tor_control (/run/tor/control or HOST:PORT)")


class ControlUnreachableError(TorError):
    """Nothing answers on the configured control socket or port."""

    def __init__(self, control: str, reason: str) -> None:
        super().__init__(
            f"cannot reach tor's control interface at {control} ({reason}): is tor running? "
            "Check `ControlSocket`/`ControlPort` in its torrc and that tor_control points at it"
        )


class CookieUnreadableError(TorError):
    """Tor asks for cookie authentication but this user cannot read the cookie file."""

    def __init__(self, path: str) -> None:
        super().__init__(
            f"cannot read tor's control cookie {path}: add this user to tor's group "
            "(`adduser $USER debian-tor`, then log in again) and set CookieAuthFileGroupReadable 1"
        )


class AuthenticationError(TorError):
    """Tor refused this controller's authentication."""


class KeyFileError(TorError):
    """The onion key file is missing, malformed or too widely readable."""


class TargetRefusedError(TorError):
    """The onion service target is not a loopback address or a unix socket."""

    def __init__(self, target: str) -> None:
        super().__init__(
            f"refusing onion target {target!r}: it must be 127.0.0.1:PORT (or [::1]:PORT) or "
            "unix:/path/to/socket, so the site is never published on a public address"
        )


class PublishError(TorError):
    """Tor refused to create the onion service."""


class EgressError(TorError):
    """An outbound request could not go through Tor; nothing was sent directly."""


class TorrcError(TorError):
    """A rendered torrc was refused by `tor --verify-config` or could not be rendered."""
