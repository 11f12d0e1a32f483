"""Every exception the bus raises, grouped by what the caller should do about it.

- ``ConfigurationError``: the input (a file, a flag, a setting) is wrong; fix it and rerun.
- ``RetriableError``: a transient failure (broker or database unreachable); retrying may work.
- ``SkippableError``: one record is bad; park it (DLQ) and go on with the rest.
- ``FatalError``: something that must stop the run (a tampered archive, a broken invariant).

Third-party errors are wrapped ``from exc`` so that the cause stays visible with ``--debug``.
Messages never carry personal data: they name fields and expectations, not values.
"""

from __future__ import annotations


class LgspError(Exception):
    """Root of every error the bus raises on purpose."""

    exit_code = 1


class ConfigurationError(LgspError):
    """Bad configuration or bad input given by a person: fix and rerun."""

    exit_code = 2


class NotFoundError(ConfigurationError):
    """A named thing (unit, subject, connector, dataset, ...) does not exist."""


class UnknownUnitError(NotFoundError):
    """A unit code that is not in the configured administrative hierarchy."""


class InvalidNameError(ConfigurationError):
    """A dataset, topic or connector name that breaks the naming rules."""


class SchemaError(ConfigurationError):
    """A malformed Avro schema file."""


class IncompatibleSchemaError(ConfigurationError):
    """A schema change that the subject's compatibility mode does not allow."""


class RetriableError(LgspError):
    """A transient failure: the same call may succeed later."""

    exit_code = 3


class BrokerUnavailableError(RetriableError):
    """The Kafka broker does not answer."""


class DatabaseUnavailableError(RetriableError):
    """A database does not answer."""


class SkippableError(LgspError):
    """One record cannot be processed; it is parked and the run goes on."""


class DataError(SkippableError):
    """A record does not match its schema or cannot be decoded."""


class FatalError(LgspError):
    """The run must stop."""

    exit_code = 4
