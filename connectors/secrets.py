"""Secret references in connector files: ``${ENV_VAR}`` inside a value, or ``file:/path``.

A connector file never holds a secret itself: it holds a reference, which is what the control
database stores, and the reference is resolved only when a connection is opened. A
``${VAR}`` that is not in the environment is also looked up as a container secret file
(``/run/secrets/<var>``, lowercase). Passwords written literally in a URL are refused.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from connectors.errors import SecretReferenceError

ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
FILE_PREFIX = "file:"
SECRETS_DIR = Path("/run/secrets")
_URL_PASSWORD = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://[^:/@?#]*:([^@/?#]*)@")
MASK = "***"


def is_reference(value: str) -> bool:
    """Whether ``value`` is entirely a reference (``${VAR}`` or ``file:...``)."""
    value = value.strip()
    return value.startswith(FILE_PREFIX) or ENV_REF.fullmatch(value) is not None


def url_password(url: str) -> str | None:
    """The password part of ``scheme://user:password@host...``, or None when there is none."""
    match = _URL_PASSWORD.match(url)
    return match.group(1) if match else None


def literal_secret_problem(value: str, *, is_url: bool) -> str | None:
    """Why ``value`` holds a literal secret, or None when it is safe to store."""
    if value.strip().startswith(FILE_PREFIX):
        return None
    if is_url:
        password = url_password(value)
        if password and not ENV_REF.fullmatch(password):
            return "the URL contains a literal password; write it as ${ENV_VAR} or use file:/path"
        return None
    if value and not is_reference(value):
        return "a literal secret; write it as ${ENV_VAR} or file:/path"
    return None


def resolve(value: str, field: str) -> str:
    """The value with ``file:`` read and every ``${VAR}`` substituted; errors name ``field``."""
    text = value.strip()
    if text.startswith(FILE_PREFIX):
        path = Path(text[len(FILE_PREFIX) :]).expanduser()
        try:
            text = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SecretReferenceError(
                f"{field}: the secret file {path} cannot be read ({exc.strerror or exc})"
            ) from exc

    def _env(match: re.Match[str]) -> str:
        name = match.group(1)
        found = os.environ.get(name)
        if found is not None:
            return found
        secret_file = SECRETS_DIR / name.lower()
        if secret_file.is_file():
            try:
                return secret_file.read_text(encoding="utf-8").strip()
            except OSError:
                pass
        raise SecretReferenceError(f"{field}: environment variable {name} is not set")

    return ENV_REF.sub(_env, text)


def mask(value: str, *, is_url: bool) -> str:
    """A display form: a URL keeps everything but its password, any other secret is masked."""
    if value.strip().startswith(FILE_PREFIX):
        return value.strip()
    if is_url:
        password = url_password(value)
        if password is None:
            return value
        start = value.index("://")
        at = value.index("@", start)
        colon = value.rindex(":", start, at)
        return value[: colon + 1] + MASK + value[at:]
    return MASK if value else value
