"""The auditors' archive: every event of the dataset topics in hash chains per topic-partition,
signed checkpoints, verification, and replay of a dataset as of any moment.

Modules: ``chain`` (canonical bytes and hashing), ``models`` (tables), ``signing`` (Ed25519 key),
``checkpoint`` (signed chain heads), ``archiver`` (the consumer that appends), ``verify``,
``replay`` and ``access`` (the replay access log).
"""
