"""Full-text search: indexing a document's text and searching it."""
