"""The Tor room: Stem control of tor (onion service) and the one outbound HTTP client (egress)."""

from blog.tor.errors import (
    AuthenticationError,
    ControlNotSetError,
    ControlUnreachableError,
    CookieUnreadableError,
    EgressError,
    KeyFileError,
    PublishError,
    TargetRefusedError,
    TorError,
    TorNotInstalledError,
    TorrcError,
)

__all__ = [
    "AuthenticationError",
    "ControlNotSetError",
    "ControlUnreachableError",
    "CookieUnreadableError",
    "EgressError",
    "KeyFileError",
    "PublishError",
    "TargetRefusedError",
    "TorError",
    "TorNotInstalledError",
    "TorrcError",
]
