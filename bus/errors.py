"""Every exception the bus raises, grouped by what the caller should do about it.

- ``ConfigurationError``: the input (a file, a flag, a setting) is wrong; fix it and rerun.
- ``RetriableError``: a transient failure (broker or database unreachable); retrying may work.
- ``SkippableError``: one record is bad; park it (DLQ) and go on with the rest.
- ``FatalError``: something that must stop the run (a tampered archive, a broken invariant).

Third-party errors are wrapped ``from exc`` so that the cause stays visible with ``--debug``.
Messages never carry personal data: they name fields and expectations, not values.

Each class names what it means outside Python: ``exit_code`` for ``lgsp`` and ``http_status``
for ``lgsp serve`` (the API maps every bus error by these attributes, in one place);
``error_code`` is a finer code for API answers (the schema registry's are Confluent's), the
HTTP status when unset.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """What ``lgsp`` exits with; each error class below names its code (README: Command line)."""

    OK = 0
    FAILED = 1  # the command ran and the answer is no (copies differ, a DAG run failed), or a bug
    INPUT = 2  # fix the input (a file, a flag, a setting, a record) and rerun
    RETRY = 3  # a service does not answer: retrying later may work
    STOPPED = 4  # the run had to stop (a tampered archive, a stopped table)
    BROKEN_PIPE = 128 + 13  # the reader of the output went away (``| head``), as Unix tools


class LgspError(Exception):
    """Root of every error the bus raises on purpose."""

    exit_code = ExitCode.FAILED
    http_status = 500
    error_code: int | None = None


class ConfigurationError(LgspError):
    """Bad configuration or bad input given by a person: fix and rerun."""

    exit_code = ExitCode.INPUT
    http_status = 422


class NotFoundError(ConfigurationError):
    """A named thing (unit, subject, connector, dataset, ...) does not exist."""

    http_status = 404


class UnknownUnitError(NotFoundError):
    """A unit code that is not in the configured administrative hierarchy."""


class InvalidNameError(ConfigurationError):
    """A dataset, topic or connector name that breaks the naming rules."""


class SchemaError(ConfigurationError):
    """A malformed Avro schema file."""

    error_code = 42201  # Confluent: invalid schema


class IncompatibleSchemaError(ConfigurationError):
    """A schema change that the subject's compatibility mode does not allow."""

    http_status = 409
    error_code = 409  # Confluent: incompatible schema


class RetriableError(LgspError):
    """A transient failure: the same call may succeed later."""

    exit_code = ExitCode.RETRY
    http_status = 503


class BrokerUnavailableError(RetriableError):
    """The Kafka broker does not answer."""


class DatabaseUnavailableError(RetriableError):
    """A database does not answer."""


class SkippableError(LgspError):
    """One record cannot be processed; it is parked and the run goes on. When it reaches the
    command line (``lgsp publish``), the input is what to fix."""

    exit_code = ExitCode.INPUT
    http_status = 422


class DataError(SkippableError):
    """A record does not match its schema or cannot be decoded."""


class FatalError(LgspError):
    """The run must stop."""

    exit_code = ExitCode.STOPPED
    http_status = 409


def safe_message(exc: BaseException) -> str:
    """A PII-free description of an error for headers and logs."""
    if isinstance(exc, DataError | LgspError):
        return str(exc)[:500]
    return type(exc).__name__
