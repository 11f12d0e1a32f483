"""The state folder (``.lgsp/`` or ``LGSP_HOME``): what later commands find of earlier ones."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from bus.config import Settings
from bus.errors import ConfigurationError


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


def write_once(path: Path, data: bytes, mode: int = 0o600) -> bool:
    """Create ``path`` holding ``data`` unless it exists; True if this call created it.

    The data goes to a temporary file in the same folder first, which is then hard-linked to
    ``path``: a reader never sees a partly written file, and of writers racing for the same
    path exactly one wins (the others get False and read the winner's file).
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), mode)
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        except OSError as exc:
            raise ConfigurationError(f"cannot create {path.name} ({exc.strerror})") from exc
        return True
    finally:
        os.unlink(tmp)
