"""Connector errors: subclasses of the bus's classes in ``bus.errors``, grouped by recovery.

A caller decides what to do from the base class (``ConfigurationError``: fix the file and
rerun; ``RetriableError``: try again later; ``SkippableError``: park the record; ``FatalError``:
stop). Messages name fields, tables and columns, never row values.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence

from bus.errors import (
    ConfigurationError,
    DatabaseUnavailableError,
    DataError,
    FatalError,
    NotFoundError,
    RetriableError,
)


class FieldError(str):
    """One problem of a connector file: the ``field`` it is about (``tables[0].cursor``; ``""``
    for no one field) and the ``message``. It reads as ``"field: message"`` (a ``str``, for
    messages and logs) and carries the pair, so the API answers ``{"field", "message"}``
    without parsing text back."""

    field: str
    message: str

    def __new__(cls, field: str, message: str) -> FieldError:
        self = super().__new__(cls, f"{field}: {message}" if field else message)
        self.field, self.message = field, message
        return self

    def __getnewargs__(self) -> tuple[str, str]:  # type: ignore[override]
        return (self.field, self.message)

    def within(self, prefix: str, note: str | None = None) -> FieldError:
        """The same problem under ``prefix`` (``tables[0]`` + ``key`` = ``tables[0].key``),
        the message led by ``(note)`` when given (the table's name)."""
        field = f"{prefix}.{self.field}" if self.field else prefix
        return FieldError(field, f"({note}) {self.message}" if note else self.message)


class ConnectorConfigError(ConfigurationError):
    """A connector file with one or more invalid fields; ``errors`` lists every one as a
    ``FieldError`` (a plain ``str`` from a plugin is kept as one naming no field)."""

    def __init__(
        self,
        errors: Sequence[FieldError | str],
        *,
        name: str | None = None,
        causes: Sequence[Exception] = (),
    ) -> None:
        self.errors = [e if isinstance(e, FieldError) else FieldError("", e) for e in errors]
        self.name = name
        self.causes = list(causes)  # the specific error behind each line, when there is one
        where = f"connector {name!r}: " if name else ""
        count = len(self.errors)
        head = f"{where}{count} invalid field{'s' if count != 1 else ''}: "
        super().__init__(head + "; ".join(self.errors))

    def __reduce__(self) -> tuple[object, ...]:
        rebuild = functools.partial(type(self), name=self.name, causes=self.causes)
        return (rebuild, (self.errors,))


class UnknownConnectorTypeError(NotFoundError):
    """A connector type that no installed package registers (lists the known ones)."""

    def __init__(self, name: str, known: Iterable[str]) -> None:
        self.type_name = name
        self.known = sorted(known)
        super().__init__(
            f"type: unknown connector type {name!r}; known types: {', '.join(self.known)}"
        )

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.type_name, self.known))


class ConnectorNotFoundError(NotFoundError):
    """No connector of that name is registered."""


class ConnectorExistsError(ConfigurationError):
    """A connector of that name is already registered."""

    http_status = 409


class TableNotFoundError(NotFoundError):
    """A configured table does not exist in the database."""


class ColumnNotFoundError(NotFoundError):
    """A configured column does not exist in its table."""


class CursorTypeError(ConfigurationError):
    """A cursor column whose type cannot order rows reliably."""


class MissingPrimaryKeyError(ConfigurationError):
    """A table without a primary key where one is required (sinks upsert by it)."""


class KeyCollationError(ConfigurationError):
    """A sink key column whose collation treats distinct keys as equal (case, accents,
    trailing spaces): distinct source rows would merge into one."""


class UnsupportedTypeError(ConfigurationError):
    """A column type the connector cannot map to Avro."""


class AuthenticationError(ConfigurationError):
    """The system refused the credentials (wrong user or password, missing grant)."""


class SecretReferenceError(ConfigurationError):
    """A ``${ENV}`` or ``file:`` reference that cannot be resolved, or a literal secret."""


class ConnectorUnavailableError(DatabaseUnavailableError):
    """The connector's system does not answer within its timeout."""


class ConnectorBusyError(RetriableError):
    """Another sync run of the same connector holds its run lock: try again later."""


class EndpointUnavailableError(RetriableError):
    """An HTTP endpoint keeps failing (5xx or timeouts) after every retry."""


class HttpClientError(ConfigurationError):
    """An HTTP endpoint refused the request (4xx): fix the URL, credentials or parameters."""

    def __init__(self, message: str, status: int) -> None:
        self.status = status
        super().__init__(message)

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (str(self), self.status))


class RowRejectedError(DataError):
    """The sink database refused one record (too long, wrong type, constraint)."""


class TableStoppedError(FatalError):
    """One table cannot go on (incompatible schema change, missing table); others continue."""

    def __init__(self, table: str, reason: str) -> None:
        self.table = table
        self.reason = reason
        super().__init__(f"table {table!r} stopped: {reason}")

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.table, self.reason))
