"""LGSP bus: Kafka topics carrying Avro change events between ward, district and city systems."""

__version__ = "0.1.0"
