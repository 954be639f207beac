"""File records (``sb_files``)."""
