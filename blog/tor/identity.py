"""What an onion address proves: its ed25519 key, signatures made with the service's own key, and their check.

A v3 address is base32(PUBKEY | CHECKSUM | VERSION), CHECKSUM = SHA3-256(".onion checksum" | PUBKEY | VERSION)[:2],
VERSION = 3 (tor's rend-spec-v3, "Encoding onion addresses"). So whoever holds the address holds the public key,
and can check a signature made with the service's identity key without asking anyone.

Tor keeps that key *expanded* (`hs_ed25519_secret_key`: the clamped scalar `a` and the nonce prefix, no seed),
which the usual ed25519 APIs (they take a seed) cannot sign with. RFC 8032 signing needs only the expanded form,
so it is done here with libsodium's constant-time group and scalar operations (PyNaCl), never Python integers on
the secret. The signatures are ordinary ed25519 signatures: any ed25519 library checks them against the key.
"""

from __future__ import annotations

import base64
import hashlib

from nacl import bindings as sodium
from nacl.exceptions import BadSignatureError, CryptoError
from nacl.exceptions import RuntimeError as SodiumRuntimeError

from blog.tor.errors import KeyFileError

VERSION = b"\x03"
CHECKSUM_PREFIX = b".onion checksum"
ADDRESS_LEN = 56


class AddressError(ValueError):
    """A string that is not a valid v3 onion address (its checksum or version is wrong)."""


def _reduce(digest: bytes) -> bytes:
    """Return a 64-byte SHA-512 digest reduced modulo the group order, as libsodium's scalars are."""
    return sodium.crypto_core_ed25519_scalar_reduce(digest)


def _scalar(key: bytes) -> bytes:
    if len(key) != 64:
        raise KeyFileError(f"an expanded ed25519 key is 64 bytes, got {len(key)}")
    # The clamped scalar mod L: the same point times the base, and what libsodium's noclamp operations take.
    return _reduce(key[:32] + bytes(32))


def public_key(key: bytes) -> bytes:
    """Return the 32-byte ed25519 public key of an expanded secret key (tor's hs_ed25519_secret_key body)."""
    try:
        return sodium.crypto_scalarmult_ed25519_base_noclamp(_scalar(key))
    except (CryptoError, SodiumRuntimeError) as exc:
        raise KeyFileError("the onion key is not a usable ed25519 key: restore it from your backup") from exc


def address_of_public_key(public: bytes) -> str:
    """Return the 56-character v3 onion address (without `.onion`) of an ed25519 public key."""
    checksum = hashlib.sha3_256(CHECKSUM_PREFIX + public + VERSION).digest()[:2]
    return base64.b32encode(public + checksum + VERSION).decode("ascii").lower()


def address_of(key: bytes) -> str:
    """Return the onion address an expanded secret key publishes (without `.onion`)."""
    return address_of_public_key(public_key(key))


def normalise(address: str) -> str:
    """Return an address as 56 lower-case characters, from `x.onion`, `http://x.onion/` or `x`."""
    name = address.strip().lower().removeprefix("http://").removeprefix("https://").split("/", 1)[0]
    name = name.removesuffix(".onion").rsplit(".", 1)[-1]  # a subdomain of the service names the same key
    return name


def public_key_of(address: str) -> bytes:
    """Return the ed25519 public key an onion address encodes; raise AddressError when it is not a v3 address."""
    name = normalise(address)
    if len(name) != ADDRESS_LEN:
        raise AddressError(f"{address!r} is not a v3 onion address (56 characters before .onion)")
    try:
        raw = base64.b32decode(name.upper())
    except ValueError as exc:
        raise AddressError(f"{address!r} is not base32: check it was copied whole") from exc
    public, checksum, version = raw[:32], raw[32:34], raw[34:]
    if version != VERSION:
        raise AddressError(f"{address!r} is not a version 3 onion address")
    if hashlib.sha3_256(CHECKSUM_PREFIX + public + VERSION).digest()[:2] != checksum:
        raise AddressError(f"{address!r} has a wrong checksum: a character was mistyped")
    return public


def sign(key: bytes, message: bytes) -> bytes:
    """Return the RFC 8032 ed25519 signature of message under an expanded secret key (64 bytes)."""
    scalar, prefix, public = _scalar(key), key[32:], public_key(key)
    nonce = _reduce(hashlib.sha512(prefix + message).digest())
    point = sodium.crypto_scalarmult_ed25519_base_noclamp(nonce)
    challenge = _reduce(hashlib.sha512(point + public + message).digest())
    s = sodium.crypto_core_ed25519_scalar_add(nonce, sodium.crypto_core_ed25519_scalar_mul(challenge, scalar))
    return point + s


def verify(address: str, message: bytes, signature: bytes) -> bool:
    """Tell whether signature is the address's key's ed25519 signature of message (AddressError: a bad address)."""
    public = public_key_of(address)
    try:
        sodium.crypto_sign_open(signature + message, public)
    except (BadSignatureError, CryptoError, ValueError):
        return False
    return True
