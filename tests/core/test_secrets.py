"""Encryption of stored secrets: round trips, key rotation, wrong keys, values stored in clear."""

from __future__ import annotations

import pytest

from promptkeeper.core.secrets import PREFIX, SecretBox, SecretKeyError, is_sealed

OLD = "o" * 40
NEW = "n" * 40


@pytest.mark.parametrize("plaintext", ["a-webhook-secret-of-32-chars-or-more", "ünïcødé ✓", ""])
def test_round_trip_and_no_plaintext_in_the_stored_form(plaintext: str) -> None:
    box = SecretBox([NEW])
    stored = box.seal(plaintext)
    assert stored.startswith(PREFIX) and is_sealed(stored)
    assert plaintext == "" or plaintext not in stored
    assert box.open(stored) == plaintext
    assert box.seal(plaintext) != stored  # a fresh IV each time: equal secrets do not look equal


def test_rotation_first_key_encrypts_all_keys_decrypt() -> None:
    stored_old = SecretBox([OLD]).seal("s3cret")
    rotating = SecretBox([NEW, OLD])
    assert rotating.open(stored_old) == "s3cret"
    resealed = rotating.reseal(stored_old)
    assert SecretBox([NEW]).open(resealed) == "s3cret"  # the old key is no longer needed
    with pytest.raises(SecretKeyError, match="PROMPTKEEPER_SECRET_KEY"):
        SecretBox([OLD]).open(resealed)


def test_wrong_key_short_key_tampering_and_legacy_values() -> None:
    stored = SecretBox([OLD]).seal("s3cret")
    with pytest.raises(SecretKeyError, match="not the key it was encrypted with"):
        SecretBox([NEW]).open(stored)
    with pytest.raises(SecretKeyError, match="at least 32 characters"):
        SecretBox(["short"])
    with pytest.raises(SecretKeyError):
        SecretBox([])
    tampered = stored[:-4] + ("AAAA" if not stored.endswith("AAAA") else "BBBB")
    with pytest.raises(SecretKeyError):
        SecretBox([OLD]).open(tampered)
    assert SecretBox([OLD]).open("stored-before-encryption") == "stored-before-encryption"
    assert SecretBox([OLD]).reseal("stored-before-encryption").startswith(PREFIX)
