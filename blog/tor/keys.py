"""The onion service's ED25519-V3 key, stored in tor's own `hs_ed25519_secret_key` format."""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import secrets
import stat
from pathlib import Path

from blog.tor.errors import KeyFileError

log = logging.getLogger(__name__)

# Tor's file header: the same bytes tor writes in a HiddenServiceDir, so the file moves between
# an ADD_ONION setup (this software) and a torrc HiddenServiceDir setup unchanged.
HEADER = b"== ed25519v1-secret: type0 ==\x00\x00\x00"
KEY_LEN = 64
FILE_LEN = len(HEADER) + KEY_LEN
HOSTNAME_FILE = "hostname"


def generate_key() -> bytes:
    """Return a new 64-byte expanded ed25519 secret key, as tor derives it from a random seed."""
    digest = bytearray(hashlib.sha512(secrets.token_bytes(32)).digest())
    # RFC 8032 clamping of the scalar half; the other half is the nonce prefix tor signs with.
    digest[0] &= 248
    digest[31] &= 63
    digest[31] |= 64
    return bytes(digest)


def _check_mode(path: Path) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise KeyFileError(
            f"onion key {path} has mode {mode:04o}, readable beyond its owner: "
            f"run `chmod 600 {path}` (and `chmod 700 {path.parent}`) and check no one else copied it"
        )


def parse_key_file(data: bytes, path: Path) -> bytes:
    """Return the 64-byte key from the contents of a tor `hs_ed25519_secret_key` file."""
    if len(data) != FILE_LEN or not data.startswith(HEADER):
        raise KeyFileError(
            f"{path} is not a tor ed25519 v3 secret key (expected {FILE_LEN} bytes starting with "
            f"{HEADER[:29].decode()!r}): restore the hs_ed25519_secret_key file from your backup"
        )
    return data[len(HEADER):]


def read_key(path: Path) -> bytes:
    """Read the key at path, refusing a file that anyone but its owner can access."""
    try:
        _check_mode(path)
        return parse_key_file(path.read_bytes(), path)
    except FileNotFoundError as exc:
        raise KeyFileError(f"onion key {path} does not exist: run `blog onion import PATH` "
                           "to restore one, or start the service once to create it") from exc
    except PermissionError as exc:
        raise KeyFileError(f"cannot read onion key {path}: run the app as the user that owns it") from exc


def write_key(path: Path, key: bytes) -> None:
    """Write key to path in tor's format: directory 0700, file 0600, replaced atomically."""
    if len(key) != KEY_LEN:
        raise KeyFileError(f"an ed25519 v3 key is {KEY_LEN} bytes, got {len(key)}")
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    tmp = path.with_name(path.name + ".tmp")
    # O_EXCL + mode at creation: the secret is never on disk with wider permissions, not even briefly.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(HEADER + key)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load_or_create_key(path: Path) -> bytes:
    """Return the key at path, creating it once when the file does not exist yet."""
    if not path.exists():
        log.info("creating a new onion key at %s", path)
        write_key(path, generate_key())
    return read_key(path)


def key_blob(key: bytes) -> str:
    """Return the key as ADD_ONION takes it: `ED25519-V3:<base64>`."""
    return "ED25519-V3:" + base64.b64encode(key).decode("ascii")


def export_key(key_path: Path, dest: Path) -> None:
    """Copy the key to dest in tor's format (mode 0600), for a backup or a HiddenServiceDir."""
    if dest.exists():
        raise KeyFileError(f"{dest} already exists: choose a new path, the export never overwrites")
    write_key(dest, read_key(key_path))


def import_key(source: Path, key_path: Path) -> None:
    """Install the key from source (tor's format) as this service's key, forgetting the old address."""
    try:
        data = source.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"cannot read {source}: {exc.strerror}") from exc
    key = parse_key_file(data, source)
    write_key(key_path, key)
    # The cached address belonged to the old key; the next publish writes the new one.
    (key_path.parent / HOSTNAME_FILE).unlink(missing_ok=True)


def remember_address(key_path: Path, address: str) -> None:
    """Cache the address tor reported for this key, as tor's HiddenServiceDir `hostname` does."""
    (key_path.parent / HOSTNAME_FILE).write_text(address + "\n", encoding="ascii")


def known_address(key_path: Path) -> str | None:
    """Return the cached address for the key, or None before the first publish."""
    try:
        return (key_path.parent / HOSTNAME_FILE).read_text(encoding="ascii").strip() or None
    except FileNotFoundError:
        return None
