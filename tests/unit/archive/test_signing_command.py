"""Checkpoints signed by an external command, the private key kept away from the archive's
state folder: here a real ``openssl`` signer script with its key in another folder."""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bus.archive.archiver import Archiver
from bus.archive.checkpoint import export_checkpoints
from bus.archive.signing import GENERATED_NAME, load_public_key, load_signing_key, public_pem
from bus.archive.verify import verify
from bus.config import Settings
from bus.errors import ConfigurationError
from tests.unit.archive._synthetic import messages

# the README's example signer: the message on stdin, the base64 signature on stdout
SIGNER = """#!/bin/sh
set -e
msg=$(mktemp); trap 'rm -f "$msg" "$msg.sig"' EXIT
cat > "$msg"
openssl pkeyutl -sign -rawin -inkey "$1" -in "$msg" -out "$msg.sig"
base64 -w0 "$msg.sig"
"""


@pytest.fixture
def signer(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(signer script, private key, public key) in a folder that is not the state folder."""
    assert shutil.which("openssl"), "openssl is needed for the external signer"
    folder = tmp_path / "signing-host"
    folder.mkdir()
    private = Ed25519PrivateKey.generate()
    key = folder / "archive-signing-key.pem"
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public = folder / "archive.pub"
    public.write_text(public_pem(private.public_key()))
    script = folder / "lgsp-sign"
    script.write_text(SIGNER)
    script.chmod(0o755)
    return script, key, public


def test_the_archiver_signs_with_the_command_and_keeps_no_key(
    offline_settings: Settings, signer: tuple[Path, Path, Path]
) -> None:
    script, key, public = signer
    settings = offline_settings.model_copy(
        update={
            "signing_command": f"{shlex.quote(str(script))} {shlex.quote(str(key))}",
            "signing_public_key_file": public,
        }
    )
    archiver = Archiver(settings)
    archiver.append(messages(12))
    checkpoint = archiver.checkpoint()
    assert checkpoint is not None and archiver.key_generated is None
    assert not (settings.home / GENERATED_NAME).exists()  # nothing private on the host
    assert load_signing_key(settings).origin == "signing_command"  # type: ignore[union-attr]
    shipped = signer[0].parent / "shipped-checkpoints.jsonl"  # an off-host copy, for strict
    assert export_checkpoints(settings, shipped) == 1
    report = verify(
        settings, public_keys=[load_public_key(public)], strict=True, checkpoints_file=shipped
    )
    assert report.ok, report.problems
    assert report.chains[0].signed_seq == 12


def test_a_signer_that_fails_or_signs_with_another_key_is_refused(
    offline_settings: Settings, signer: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    script, key, public = signer
    other = tmp_path / "other.pub"
    other.write_text(public_pem(Ed25519PrivateKey.generate().public_key()))
    cases = [
        (f"{script} {tmp_path / 'no-such-key.pem'}", public, "signing_command: exited with status"),
        (f"{script} {key}", other, "does not verify with signing_public_key_file"),
        ("echo not-a-signature", public, "expected a 64-byte Ed25519 signature"),
        (str(tmp_path / "no-such-command"), public, "signing_command: cannot run it"),
    ]
    for command, public_file, message in cases:
        settings = offline_settings.model_copy(
            update={"signing_command": command, "signing_public_key_file": public_file}
        )
        archiver = Archiver(settings)
        archiver.append(messages(3))
        with pytest.raises(ConfigurationError, match=message):
            archiver.checkpoint()
    # nothing was signed: the entries are an unsigned tail
    assert not verify(offline_settings, public_keys=[load_public_key(public)]).ok


def test_signing_settings_are_checked(
    offline_settings: Settings, signer: tuple[Path, Path, Path]
) -> None:
    script, key, public = signer
    alone = offline_settings.model_copy(update={"signing_command": str(script)})
    with pytest.raises(ConfigurationError, match="signing_public_key_file: required"):
        load_signing_key(alone)
    both = alone.model_copy(update={"signing_public_key_file": public, "signing_key_file": key})
    with pytest.raises(ConfigurationError, match="signing_command, signing_key_file"):
        load_signing_key(both)
