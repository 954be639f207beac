"""Server-side functions, their runs, and the durable queue of function jobs."""
