"""Text as the bus carries it.

- Key text (the fields of a record's primary key) travels byte-exactly: two source keys that
  differ only by Unicode normalisation (NFC ``Quận`` and NFD ``Quận``), like any two distinct
  strings, are two keys on the bus, in the sink and in ``reconcile``.
- Other text is normalised to NFC when it enters the bus (a source read, ``lgsp publish``),
  so that copies of one value compare equal whatever form a source stored.
- Text that is not valid UTF-8 (a driver could not decode it: ``NotUtf8``; or Python text
  holding lone surrogates, as JSON ``"\\udc80"`` gives) has no Avro form: it is refused with
  ``NOT_UTF8``, and the row goes to the DLQ, naming the column, never the value.
"""

from __future__ import annotations

import re
import unicodedata

from bus.errors import DataError

NOT_UTF8 = "text that is not valid UTF-8, which Avro text cannot hold"

_SURROGATE = re.compile("[\ud800-\udfff]")


class NotUtf8(str):
    """Text a driver read but could not decode as UTF-8: the text with U+FFFD in place of the
    bad bytes (printable, never published); ``raw`` is the stored bytes."""

    raw: bytes

    def __new__(cls, raw: bytes) -> NotUtf8:
        self = super().__new__(cls, raw.decode("utf-8", "replace"))
        self.raw = raw
        return self


def decode_utf8(raw: bytes) -> str:
    """Bytes a database holds as text: a ``str``, or a ``NotUtf8`` marker (refused per row)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return NotUtf8(raw)


def exact(value: str) -> str:
    """``value`` unchanged (key text), or DataError(NOT_UTF8)."""
    if not value.isascii() and (type(value) is NotUtf8 or _SURROGATE.search(value)):
        raise DataError(NOT_UTF8)
    return value


def nfc(value: str) -> str:
    """``value`` in NFC (other text), or DataError(NOT_UTF8)."""
    if value.isascii():
        return value
    return unicodedata.normalize("NFC", exact(value))
