"""The state folder (``.lgsp/`` or ``LGSP_HOME``): what later commands find of earlier ones."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from bus.config import Settings


def home(settings: Settings) -> Path:
    path = settings.home.expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write a JSON file atomically: readers see the old or the new file, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=2, ensure_ascii=False)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)  # readable by an Airflow running as another user
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
