"""Synthetic, seeded data that looks like Ho Chi Minh City's: the domain datasets for demos,
tests and benchmarks (``lgsp generate``)."""

from bus.generate.datasets import (
    BINH_TAN_PERMANENT,
    BINH_TAN_RESIDENTS,
    BINH_TAN_TEMPORARY,
    DATASETS,
    DEFAULT_END,
    DEFAULT_START,
    DatasetSpec,
    dataset_spec,
    generate,
)
from bus.generate.output import write_csv, write_jsonl
from bus.generate.procedures import PROCEDURES, Procedure
from bus.generate.sql import load_records, load_table

__all__ = [
    "BINH_TAN_PERMANENT",
    "BINH_TAN_RESIDENTS",
    "BINH_TAN_TEMPORARY",
    "DATASETS",
    "DEFAULT_END",
    "DEFAULT_START",
    "PROCEDURES",
    "DatasetSpec",
    "Procedure",
    "dataset_spec",
    "generate",
    "load_records",
    "load_table",
    "write_csv",
    "write_jsonl",
]
