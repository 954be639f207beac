"""Moving a whole installation (or one app) between stores: a record stream read from one store
in one consistent snapshot, written into another in one transaction.

``records`` names every kind of record and its fields (the JSON Lines format of ``backend
export``); ``sqlite`` and ``postgresql`` read and write them; ``upstream`` reads an upstream
StaticBackend PostgreSQL database as the same records; ``jsonl`` reads and writes the file format.
"""
