"""The Ed25519 key that signs archive checkpoints.

Where the signature comes from, first match wins:

- ``settings.signing_command``: an external signer (a KMS or HSM client, a signing host
  reached over ssh), so that the private key never is on the archive's host. The command gets
  the checkpoint message on stdin and prints the 64-byte Ed25519 signature (base64, hex or
  raw); ``settings.signing_public_key_file`` names its public key, and every signature it
  returns is checked against that key before it is stored.
- ``settings.signing_key_file`` (PEM), e.g. a secret mounted only into the archiver.
- the environment variable ``LGSP_SIGNING_KEY`` (the PEM text itself).
- the file ``<home>/archive-signing-key.pem``. When none of the above exists, the archiver
  generates that file on first use (mode 0600) and says so: fine for a demo, not for
  production, where anyone who can rewrite the archive can then re-sign it.

Verifiers may instead be given exported public keys (``lgsp audit verify --public-key``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import shlex
import subprocess
from dataclasses import dataclass, field
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
    """What signs checkpoints: a private key held here, or ``command`` (external signer)."""

    public: Ed25519PublicKey
    origin: str  # "signing_command", "signing_key_file", "LGSP_SIGNING_KEY", "state folder"
    path: Path | None = None
    generated: bool = False
    private: Ed25519PrivateKey | None = field(default=None, repr=False)
    command: str | None = None

    @classmethod
    def held(
        cls, private: Ed25519PrivateKey, origin: str, path: Path | None = None, **kw: bool
    ) -> SigningKey:
        return cls(private.public_key(), origin, path, private=private, **kw)

    @property
    def key_id(self) -> str:
        return key_id(self.public)

    def sign(self, message: bytes) -> bytes:
        if self.private is not None:
            return self.private.sign(message)
        assert self.command is not None
        return command_signature(self.command, message, self.public)


SIGN_TIMEOUT_S = 60.0


def _decode_signature(out: bytes) -> bytes | None:
    if len(out) == 64:
        return out
    text = out.strip()
    if len(text) == 128:
        try:
            return bytes.fromhex(text.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            pass
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == 64 else None


def command_signature(command: str, message: bytes, public: Ed25519PublicKey) -> bytes:
    """The signature ``command`` prints for ``message`` (on its stdin), checked with ``public``."""
    try:
        done = subprocess.run(  # the operator's configured command
            shlex.split(command),
            input=message,
            capture_output=True,
            timeout=SIGN_TIMEOUT_S,
            check=False,
        )
    except (OSError, ValueError, subprocess.TimeoutExpired) as exc:
        reason = "timed out" if isinstance(exc, subprocess.TimeoutExpired) else str(exc)
        raise ConfigurationError(f"signing_command: cannot run it ({reason})") from exc
    if done.returncode != 0:
        lines = done.stderr.decode(errors="replace").strip().splitlines()
        last = lines[-1][:200] if lines else "no message"
        raise ConfigurationError(f"signing_command: exited with status {done.returncode} ({last})")
    signature = _decode_signature(done.stdout)
    if signature is None:
        raise ConfigurationError(
            "signing_command: expected a 64-byte Ed25519 signature on stdout (raw, 128 hex "
            f"digits or base64), got {len(done.stdout)} byte(s)"
        )
    if not verify_signature(public, signature, message):
        raise ConfigurationError(
            "signing_command: the signature it printed does not verify with "
            f"signing_public_key_file (key id {key_id(public)}): another key signed"
        )
    return signature


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
    """The configured signer; a key generated in the state folder when ``create`` and none."""
    if settings.signing_command is not None:
        if settings.signing_key_file is not None:
            raise ConfigurationError(
                "signing_command, signing_key_file: give one of them (an external signer or "
                "a key file), not both"
            )
        if settings.signing_public_key_file is None:
            raise ConfigurationError(
                "signing_public_key_file: required with signing_command (the PEM public key "
                "of the key the command signs with)"
            )
        public = load_public_key(settings.signing_public_key_file, "signing_public_key_file")
        return SigningKey(
            public,
            "signing_command",
            settings.signing_public_key_file,
            command=settings.signing_command,
        )
    if settings.signing_key_file is not None:
        path = settings.signing_key_file
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ConfigurationError(
                f"signing_key_file: cannot read {path} ({exc.strerror})"
            ) from exc
        private = _private_from_pem(data, "signing_key_file")
        return SigningKey.held(private, "signing_key_file", path)
    env = os.environ.get(ENV_KEY)
    if env:
        return SigningKey.held(_private_from_pem(env.encode(), ENV_KEY), ENV_KEY)
    path = generated_path(settings)
    if path.is_file():
        return SigningKey.held(
            _private_from_pem(path.read_bytes(), str(path)), "state folder", path
        )
    if not create:
        return None
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    if not write_once(path, pem):  # another process generated one at the same moment
        return SigningKey.held(
            _private_from_pem(path.read_bytes(), str(path)), "state folder", path
        )
    log.info("no signing key configured: generated a new Ed25519 key at %s", path)
    return SigningKey.held(private, "state folder", path, generated=True)


def load_public_key(path: Path, where: str = "--public-key") -> Ed25519PublicKey:
    """A public key file (PEM, as ``lgsp archive export-key`` writes it) or a private key PEM."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"{where}: cannot read {path} ({exc.strerror})") from exc
    return parse_public_key(data, f"{where} {path.name}")


def parse_public_key(data: bytes, where: str) -> Ed25519PublicKey:
    """A public key PEM (or a private key PEM, for its public half)."""
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return _private_from_pem(data, where).public_key()
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigurationError(f"{where}: not an Ed25519 public key")
    return key


def verify_signature(public: Ed25519PublicKey, signature: bytes, message: bytes) -> bool:
    try:
        public.verify(bytes(signature), message)
    except InvalidSignature:
        return False
    return True
