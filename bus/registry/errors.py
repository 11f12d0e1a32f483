"""Errors of the schema registry, with the error codes of Confluent's Schema Registry (the
API answers with them; the command line exits as their bus base classes say)."""

from __future__ import annotations

from bus.errors import ConfigurationError, InvalidNameError, NotFoundError, SchemaError


class SubjectNotFoundError(NotFoundError):
    """A subject with no live version."""

    error_code = 40401


class VersionNotFoundError(NotFoundError):
    """A version a subject does not hold."""

    error_code = 40402


class SchemaNotFoundError(NotFoundError):
    """A schema id, or a schema no version of a subject holds."""

    error_code = 40403


class InvalidVersionError(ConfigurationError):
    """A version that is neither a number from 1 nor ``latest``."""

    error_code = 42202


class InvalidCompatibilityError(SchemaError):
    """A compatibility mode that is not one of ``MODES``."""

    error_code = 42203


class InvalidSubjectError(InvalidNameError):
    """A subject name that breaks ``check_subject``."""

    error_code = 42208


class SubjectInUseError(ConfigurationError):
    """A delete of a subject that a connector, dataset or route writes or reads (``--force``
    deletes it anyway)."""

    error_code = 42206  # Confluent: references exist


class SchemaDeleteError(ConfigurationError):
    """A permanent delete of a version that is not soft-deleted yet."""

    http_status = 404
    error_code = 40407  # Confluent: version not soft-deleted


class SubjectNotSoftDeletedError(SchemaDeleteError):
    """A permanent delete of a subject whose versions are not all soft-deleted yet."""

    error_code = 40405
