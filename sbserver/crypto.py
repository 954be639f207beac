"""Encryption at rest of what the store keeps secret (function secrets), keyed by APP_SECRET.

A sealed value is ``enc:v1:`` then the URL-safe base64 of a 12-byte random nonce followed by the
AES-256-GCM ciphertext and tag. The key is derived from APP_SECRET with HKDF-SHA256 (one key per
purpose), and each value is bound to where it belongs (``context``: the app and the function), so
a sealed value copied into another row does not open. The version in the prefix lets a later
scheme (or key rotation) tell old values from new ones.

Opening a value sealed under another APP_SECRET raises ``SecretsUnreadable``: its message says
what to do, and nothing half-decrypted is ever returned.
"""

from __future__ import annotations

import base64
import binascii
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from sbserver.errors import SBError

PREFIX = "enc:v1:"
NONCE_BYTES = 12
FUNCTION_SECRETS = b"sbserver function secrets v1"


class SecretsUnreadable(SBError):
    """A sealed value does not open: APP_SECRET changed, or the stored value was altered."""


def is_sealed(stored: str) -> bool:
    return stored.startswith(PREFIX)


class SecretBox:
    """Seals and opens short texts with a key derived from ``app_secret`` for one ``purpose``."""

    def __init__(self, app_secret: bytes, purpose: bytes = FUNCTION_SECRETS) -> None:
        if not app_secret:
            raise ValueError("APP_SECRET is empty: function secrets cannot be encrypted")
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(app_secret)
        self._aead = AESGCM(key)
        self._opened: dict[tuple[str, str], str] = {}

    def seal(self, plain: str, context: str) -> str:
        """The stored form of ``plain`` (an empty text stays empty: there is nothing to hide)."""
        if not plain:
            return ""
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plain.encode("utf-8", "surrogatepass"), context.encode())
        return PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")

    def open(self, stored: str, context: str) -> str:
        """The plain text of a stored value; a value stored before encryption is returned as it is."""
        if not is_sealed(stored):
            return stored
        key = (stored, context)
        cached = self._opened.get(key)
        if cached is not None:
            return cached
        try:
            raw = base64.urlsafe_b64decode(stored[len(PREFIX) :].encode("ascii"))
            plain = self._aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], context.encode())
        except (InvalidTag, ValueError, binascii.Error) as exc:
            raise SecretsUnreadable(
                "function secrets cannot be decrypted: APP_SECRET is not the one they were encrypted with "
                "(restore the previous APP_SECRET, or set the function's secrets again)"
            ) from exc
        text = plain.decode("utf-8", "surrogatepass")
        if len(self._opened) >= 1024:  # runs read the same few values over and over
            self._opened.clear()
        self._opened[key] = text
        return text
