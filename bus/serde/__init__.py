"""Avro serialisation with the Confluent framing, and JSON conversion by schema."""

from bus.serde.avro_codec import AvroCodec, UnknownSchemaError
from bus.serde.framing import MAGIC, frame, unframe

__all__ = ["MAGIC", "AvroCodec", "UnknownSchemaError", "frame", "unframe"]
