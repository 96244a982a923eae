"""Secrets at rest: values PromptKeeper must read back (webhook signing secrets) are stored
encrypted, with a key that is not in the database.

A stolen database dump (or backup, or replica) then holds no usable secret. API keys and
passwords are not here: they are only ever compared, so they are stored as hashes.

Stored form: `enc:v1:<Fernet token>` (AES-128-CBC with HMAC-SHA256, from `cryptography`). Several
keys may be configured: the first encrypts, all decrypt, so a key is rotated by putting the new
one first, re-encrypting (`promptkeeper db rotate-secrets`), then dropping the old one.

Values that are only compared but would be guessable from a plain hash (a fingerprint of a login
request holds the password) are stored as an HMAC under the same keys (`mac`), so a dump is no
offline oracle either.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

PREFIX = "enc:v1:"
MIN_KEY_LENGTH = 32


class SecretKeyError(ValueError):
    """A stored secret cannot be decrypted with the configured keys, or a key is unusable."""


def _fernet(key: str) -> Fernet:
    if len(key) < MIN_KEY_LENGTH:
        raise SecretKeyError(f"secret key: at least {MIN_KEY_LENGTH} characters (got {len(key)})")
    # Any long random string works as a key: it is stretched to Fernet's 32 bytes by SHA-256.
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(key.encode()).digest()))


class SecretBox:
    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise SecretKeyError("secret key: none configured")
        self._fernet = MultiFernet([_fernet(key) for key in keys])
        # not the Fernet key itself: a MAC key of its own, derived from the same secret
        self._mac_keys = [hashlib.sha256(b"promptkeeper-mac:" + key.encode()).digest() for key in keys]

    def mac(self, data: bytes) -> list[str]:
        """HMAC-SHA256 of `data` under each key, the first key's first: store the first, and accept
        any (a value stored before a key rotation still matches)."""
        return [hmac.new(key, data, hashlib.sha256).hexdigest() for key in self._mac_keys]

    def seal(self, plaintext: str) -> str:
        return PREFIX + self._fernet.encrypt(plaintext.encode()).decode("ascii")

    def open(self, stored: str) -> str:
        """The plaintext; a value stored before encryption existed is returned as it is."""
        if not is_sealed(stored):
            return stored
        try:
            return self._fernet.decrypt(stored[len(PREFIX) :].encode("ascii")).decode()
        except (InvalidToken, ValueError) as exc:
            raise SecretKeyError(
                "a stored secret cannot be decrypted: PROMPTKEEPER_SECRET_KEY is not the key it was "
                "encrypted with (every instance and worker needs the same key)"
            ) from exc

    def reseal(self, stored: str) -> str:
        """Encrypted with the first key (rotation), or encrypted for the first time."""
        return self.seal(self.open(stored))


def is_sealed(stored: str) -> bool:
    return stored.startswith(PREFIX)
