"""Storage, cache/bus and mail backends: each kind an abstract base plus implementations."""
