"""Schema registry in the control database: subjects, versions, global ids, compatibility."""

from bus.registry.compat import check_compatibility
from bus.registry.store import RegisteredSchema, Registry, subject_for

__all__ = ["Registry", "RegisteredSchema", "check_compatibility", "subject_for"]
