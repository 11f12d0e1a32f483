"""The request log (uvicorn's access log) without record keys: the path segment after
``/history/`` (a key of the auditor API, often a citizen id) and after ``/records/`` is
written as ``***``, as is the query string of those paths."""

from __future__ import annotations

import logging
import re

KEYED = re.compile(r"(/(?:history|records)/)[^\s]*")


def mask_path(path: str) -> str:
    return KEYED.sub(r"\1***", path)


class MaskKeys(logging.Filter):
    """Rewrites the path argument of uvicorn's access-log records."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], mask_path(args[2]), *args[3:])
        return True


def install(logger_name: str = "uvicorn.access") -> None:
    """Add the filter once to ``logger_name``."""
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, MaskKeys) for f in logger.filters):
        logger.addFilter(MaskKeys())
