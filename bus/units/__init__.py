"""Administrative units (city, district, ward) and the topic names built from them."""

from bus.units.hierarchy import (
    CodeMapping,
    Hierarchy,
    Unit,
    available_hierarchies,
    hierarchy_from_file,
    load_hierarchy,
)
from bus.units.topics import DatasetName, parse_topic, topic_name, validate_dataset_name

__all__ = [
    "CodeMapping",
    "DatasetName",
    "Hierarchy",
    "Unit",
    "available_hierarchies",
    "hierarchy_from_file",
    "load_hierarchy",
    "parse_topic",
    "topic_name",
    "validate_dataset_name",
]
