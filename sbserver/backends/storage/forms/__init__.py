"""Form submissions."""
