"""Secret references in connector files: ``${ENV_VAR}`` inside a value, or ``file:/path``.

A connector file never holds a secret itself: it holds a reference, which is what the control
database stores, and the reference is resolved only when a connection is opened. A
``${VAR}`` that is not in the environment is also looked up as a container secret file
(``/run/secrets/<var>``, lowercase).

Refused when written literally (each problem names what to change, never the value): a URL's
password (parsed as SQLAlchemy parses it for a database URL, so a password holding ``/``,
``#`` or ``?`` is found too; as ``urllib`` parses it for an HTTP URL), a secret-looking query
parameter (``password``, ``token``, ``api_key``, ``key``, ``signature``...), an HTTP header
whose name suggests a secret (``Authorization``, ``*token*``, ``*key*``, ``*secret*``,
``Cookie``...), and a secret-looking request parameter. A whole URL may instead be a
``file:`` reference. Displayed forms mask every one of them.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import SplitResult, parse_qsl, urlsplit, urlunsplit

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from connectors.errors import SecretReferenceError

ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
FILE_PREFIX = "file:"
SECRETS_DIR = Path("/run/secrets")
MASK = "***"

# query or request parameters whose value is a secret
_SECRET_PARAM = re.compile(
    r"(?i)^(?:.*(?:password|passwd|secret|token)|pwd|key|api[_-]?key|access[_-]?key|"
    r"signature|sig|auth|credentials?)$"
)
# header names that carry a secret
_SECRET_HEADER = re.compile(r"(?i)(auth|token|key|secret|cookie|session|password|signature)")
# the user-info part as SQLAlchemy's URL parser reads it: the password runs to the first '@'
_USERINFO = re.compile(r"^(?P<head>[^:/?#@]*://[^:/@]*:)(?P<password>[^@]*)(?=@)")
# for masking: also a password holding '@' (up to the '@' before the host)
_MASKED_USERINFO = re.compile(
    r"^(?P<head>[^:/?#@]*://[^:/@]*:)(?P<password>[^@]*(?:@[^@/?#]*(?=@))*)(?=@)"
)
# an auth scheme in front of a reference: "Bearer ${TOKEN}"
_SCHEME_WORD = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,30}\s+$")

_HINT = "write it as ${ENV_VAR} or use file:/path"
_URL_HINT = "write it as ${ENV_VAR}, or keep the whole URL in a file:/path reference"


def is_reference(value: str) -> bool:
    """Whether ``value`` is entirely a reference (``${VAR}`` or ``file:...``)."""
    value = value.strip()
    return value.startswith(FILE_PREFIX) or ENV_REF.fullmatch(value) is not None


def is_secret_param(name: str) -> bool:
    """Whether a query or request parameter of this name carries a secret."""
    return _SECRET_PARAM.match(name.strip()) is not None


def is_secret_header(name: str) -> bool:
    """Whether an HTTP header of this name carries a secret."""
    return _SECRET_HEADER.search(name) is not None


def _references_only(value: str, *, scheme: bool) -> bool:
    """``value`` is a reference, or (``scheme``) an auth scheme word before references."""
    text = value.strip()
    if is_reference(text):
        return True
    if not scheme or not ENV_REF.search(text):
        return False
    rest = ENV_REF.sub("", text)
    return rest == "" or _SCHEME_WORD.match(rest) is not None


def _literal_param(name: str, value: str) -> bool:
    """A secret-looking parameter whose value is not a ``${ENV_VAR}``."""
    return is_secret_param(name) and bool(value) and ENV_REF.fullmatch(value.strip()) is None


def _secret_problem(passwords: tuple[str | None, ...], query: str) -> str | None:
    """The first literal secret of a URL: a password that is no ``${VAR}``, else a query
    parameter that names a secret."""
    for candidate in passwords:
        if candidate and ENV_REF.fullmatch(candidate) is None:
            return f"the URL contains a literal password; {_URL_HINT}"
    for name, value in parse_qsl(query, keep_blank_values=True):
        if _literal_param(name, value):
            return f"the URL's query parameter {name!r} is a literal secret; {_URL_HINT}"
    return None


def _is_http(value: str) -> bool:
    return value.strip().lower().startswith(("http://", "https://", "${"))


def sql_url_problem(value: str) -> str | None:
    """Why a database URL holds a literal secret (or cannot be read), or None when safe.
    Parsed with SQLAlchemy's ``make_url`` (a ``${VAR}`` in the port is read as a number)."""
    text = value.strip()
    if text.startswith(FILE_PREFIX):
        return None
    try:
        password = make_url(text).password
    except (ArgumentError, ValueError):
        try:
            make_url(ENV_REF.sub("0", text))
        except (ArgumentError, ValueError):
            return "expected a SQLAlchemy URL such as postgresql://user:${PASSWORD}@host:5432/db"
        password = None  # read from the text below
    raw = _USERINFO.match(text)
    rest = text[raw.end("password") :] if raw else text
    passwords = (password, raw.group("password") if raw else None)
    return _secret_problem(passwords, rest.partition("?")[2])


def _host_part_ok(parts: SplitResult) -> bool:
    """The URL's ``user:password@host:port`` part can be read (one '@', a numeric port)."""
    try:
        parts.port  # noqa: B018 - raises on a malformed host:port
    except ValueError:
        return False
    return not (parts.netloc.endswith(":") or parts.netloc.count("@") > 1)


def http_url_problem(value: str) -> str | None:
    """Why an HTTP URL holds a literal secret (or has a malformed host part), or None."""
    text = value.strip()
    if text.startswith(FILE_PREFIX):
        return None
    parts = urlsplit(text)
    if not _host_part_ok(parts):
        return "expected host[:port] after the scheme (percent-encode ':' '/' '?' '#' '@')"
    return _secret_problem((parts.password,), parts.query)


def literal_secret_problem(value: str, *, is_url: bool) -> str | None:
    """Why ``value`` holds a literal secret, or None when it is safe to store."""
    if value.strip().startswith(FILE_PREFIX):
        return None
    if is_url:
        return http_url_problem(value) if _is_http(value) else sql_url_problem(value)
    if value and not is_reference(value):
        return f"a literal secret; {_HINT}"
    return None


def header_problem(name: str, value: str) -> str | None:
    """Why a header holds a literal secret: a secret-looking header must be a reference
    (``${TOKEN}``, ``Bearer ${TOKEN}`` or ``file:/path``)."""
    if is_secret_header(name) and not _references_only(value, scheme=True):
        return f"header {name}: a literal secret; {_HINT} (e.g. 'Bearer ${{API_TOKEN}}')"
    return None


def param_problem(name: str, value: str) -> str | None:
    """Why a request parameter holds a literal secret (a secret-looking name needs a
    ``${ENV_VAR}``)."""
    if _literal_param(name, value):
        return f"parameter {name!r}: a literal secret; write it as ${{ENV_VAR}}"
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


def _mask_query(query: str) -> str:
    pairs = []
    for pair in query.split("&"):
        name, eq, _ = pair.partition("=")
        pairs.append(f"{name}={MASK}" if eq and is_secret_param(name) else pair)
    return "&".join(pairs)


def mask_url(value: str) -> str:
    """A URL with its password and secret-looking query values masked. A database URL is read
    as SQLAlchemy reads it (a password holding '/', '#', '?' or '@' is masked whole); when in
    doubt more is masked, never less."""
    text = value.strip()
    if text.lower().startswith(("http://", "https://")):
        masked = _mask_http(text)
        if masked is not None:
            return masked
    match = _MASKED_USERINFO.match(text)
    if match and match.group("password"):
        text = match.group("head") + MASK + text[match.end("password") :]
    head, question, rest = text.partition("?")
    if not question:
        return text
    query, hash_, fragment = rest.partition("#")
    return f"{head}?{_mask_query(query)}{hash_}{fragment}"


def _mask_http(text: str) -> str | None:
    parts = urlsplit(text)
    if not _host_part_ok(parts):
        return None
    netloc = parts.netloc
    if parts.password is not None:
        userinfo, _, host = netloc.rpartition("@")
        netloc = f"{userinfo.partition(':')[0]}:{MASK}@{host}"
    query = _mask_query(parts.query) if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def mask(value: str, *, is_url: bool) -> str:
    """A display form: a URL keeps everything but its secrets, any other secret is masked."""
    if value.strip().startswith(FILE_PREFIX):
        return value.strip()
    if is_url:
        return mask_url(value)
    return MASK if value else value
