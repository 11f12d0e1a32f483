"""Kafka clients of the bus: ``options`` (address, timeouts, SASL/TLS from the settings),
``diagnose`` (why a connection failed), ``partitioner`` (the murmur2 key partitioner),
``clients`` (the producer, consumer and admin client: kafka-python) and ``topics`` (topic
creation and configs)."""
