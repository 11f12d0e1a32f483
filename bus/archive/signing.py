"""The Ed25519 key that signs archive checkpoints.

Where the private key comes from, first match wins: ``settings.signing_key_file`` (PEM), the
environment variable ``LGSP_SIGNING_KEY`` (the PEM text itself), the file
``<home>/archive-signing-key.pem``. When none exists, the archiver generates that file on first
use (mode 0600) and says so. Verifiers may instead be given exported public keys.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from bus.config import Settings
from bus.errors import ConfigurationError
from bus.state import home, write_once

log = logging.getLogger(__name__)

ENV_KEY = "LGSP_SIGNING_KEY"
GENERATED_NAME = "archive-signing-key.pem"


@dataclass(frozen=True)
class SigningKey:
    private: Ed25519PrivateKey
    origin: str  # "signing_key_file", "LGSP_SIGNING_KEY", "state folder"
    path: Path | None = None
    generated: bool = False

    @property
    def public(self) -> Ed25519PublicKey:
        return self.private.public_key()

    @property
    def key_id(self) -> str:
        return key_id(self.public)

    def sign(self, message: bytes) -> bytes:
        return self.private.sign(message)


def key_id(public: Ed25519PublicKey) -> str:
    """First 16 hex digits of SHA-256 over the raw 32-byte public key."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_pem(public: Ed25519PublicKey) -> str:
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def _private_from_pem(data: bytes, where: str) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ConfigurationError(
            f"{where}: expected an unencrypted Ed25519 private key in PEM form "
            f"(-----BEGIN PRIVATE KEY-----)"
        ) from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigurationError(f"{where}: the key is not an Ed25519 key")
    return key


def generated_path(settings: Settings) -> Path:
    return home(settings) / GENERATED_NAME


def load_signing_key(settings: Settings, *, create: bool = False) -> SigningKey | None:
    """The configured private key; generated in the state folder when ``create`` and none."""
    if settings.signing_key_file is not None:
        path = settings.signing_key_file
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ConfigurationError(
                f"signing_key_file: cannot read {path} ({exc.strerror})"
            ) from exc
        return SigningKey(_private_from_pem(data, "signing_key_file"), "signing_key_file", path)
    env = os.environ.get(ENV_KEY)
    if env:
        return SigningKey(_private_from_pem(env.encode(), ENV_KEY), ENV_KEY)
    path = generated_path(settings)
    if path.is_file():
        return SigningKey(_private_from_pem(path.read_bytes(), str(path)), "state folder", path)
    if not create:
        return None
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    if not write_once(path, pem):  # another process generated one at the same moment
        return SigningKey(_private_from_pem(path.read_bytes(), str(path)), "state folder", path)
    log.info("no signing key configured: generated a new Ed25519 key at %s", path)
    return SigningKey(private, "state folder", path, generated=True)


def load_public_key(path: Path) -> Ed25519PublicKey:
    """A public key file (PEM, as ``lgsp archive export-key`` writes it) or a private key PEM."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"--public-key: cannot read {path} ({exc.strerror})") from exc
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return _private_from_pem(data, f"--public-key {path.name}").public_key()
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigurationError(f"--public-key {path.name}: not an Ed25519 public key")
    return key


def verify_signature(public: Ed25519PublicKey, signature: bytes, message: bytes) -> bool:
    try:
        public.verify(bytes(signature), message)
    except InvalidSignature:
        return False
    return True
