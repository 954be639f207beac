"""Scheduled tasks and their runs."""
