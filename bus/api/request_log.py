"""Request paths as logs may show them: the key of a record lookup
(``/v1/datasets/{name}/records/{key}``) is a citizen's identifier, so it is masked in the
server's request log and in refusals written to the access log."""

from __future__ import annotations

import logging
import re

_RECORD_KEY = re.compile(r"(/v1/datasets/[^/?#]*/records/)[^?#]+")
MASK = "***"


def masked_path(path: str) -> str:
    """``path`` with a lookup's record key replaced by ``***`` (other paths as they are)."""
    return _RECORD_KEY.sub(lambda m: m.group(1) + MASK, path)


class MaskRecordKeys(logging.Filter):
    """Masks record keys in uvicorn's access-log lines (whose arguments are client, method,
    path with query, HTTP version, status)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], masked_path(args[2]), *args[3:])
        return True


def mask_access_log(logger_name: str = "uvicorn.access") -> None:
    """Install ``MaskRecordKeys`` on the server's access logger (once)."""
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, MaskRecordKeys) for f in logger.filters):
        logger.addFilter(MaskRecordKeys())
