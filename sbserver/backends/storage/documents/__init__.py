"""Documents: inserts, reads, scans, updates and deletes, collections and indexes."""
