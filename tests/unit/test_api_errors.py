"""Every bus error carries its HTTP status (and a finer error code where one exists): the API
maps errors by these attributes in one place, as the command line maps ``exit_code``."""

from __future__ import annotations

import pytest

from bus.api.errors import from_bus_error
from bus.catalog.errors import AccessDeniedError
from bus.errors import (
    BrokerUnavailableError,
    ConfigurationError,
    DataError,
    FatalError,
    IncompatibleSchemaError,
    LgspError,
    NotFoundError,
    SchemaError,
    UnknownUnitError,
)
from bus.registry.errors import (
    InvalidCompatibilityError,
    InvalidSubjectError,
    InvalidVersionError,
    SchemaDeleteError,
    SchemaNotFoundError,
    SubjectInUseError,
    SubjectNotFoundError,
    SubjectNotSoftDeletedError,
    VersionNotFoundError,
)
from connectors.errors import ConnectorBusyError, ConnectorExistsError, ConnectorNotFoundError


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (ConfigurationError, 422, 422),
        (NotFoundError, 404, 404),
        (UnknownUnitError, 404, 404),
        (ConnectorNotFoundError, 404, 404),
        (AccessDeniedError, 403, 403),
        (ConnectorExistsError, 409, 409),
        (IncompatibleSchemaError, 409, 409),
        (SchemaError, 422, 42201),
        (DataError, 422, 422),
        (BrokerUnavailableError, 503, 503),
        (ConnectorBusyError, 503, 503),
        (FatalError, 409, 409),
        (SubjectNotFoundError, 404, 40401),
        (VersionNotFoundError, 404, 40402),
        (SchemaNotFoundError, 404, 40403),
        (InvalidVersionError, 422, 42202),
        (InvalidCompatibilityError, 422, 42203),
        (SubjectInUseError, 422, 42206),
        (InvalidSubjectError, 422, 42208),
        (SchemaDeleteError, 404, 40407),
        (SubjectNotSoftDeletedError, 404, 40405),
    ],
)
def test_an_error_answers_with_its_class_status_and_code(
    error: type[LgspError], status: int, code: int
) -> None:
    answer = from_bus_error(error("field: what was expected"))
    assert (answer.status, answer.code) == (status, code)
    assert answer.message == "field: what was expected"


def test_an_unexpected_error_says_no_more_than_internal_error() -> None:
    answer = from_bus_error(LgspError("table citizen row 0790... broke"))
    assert (answer.status, answer.code, answer.message) == (500, 500, "internal error")
