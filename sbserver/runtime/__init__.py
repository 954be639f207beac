"""The JavaScript sandbox: worker processes running user code, and the helper bridge.

The server never runs user JavaScript in its own process. A pool of worker processes each run
one function at a time in a fresh engine context with a memory cap and a stack limit; the
helpers user code calls (``create``, ``query``, ``publish``, ``fetch`` ...) cross back to the
server as JSON messages over the worker's pipes, where the server's event loop performs them
with the run's identity and answers ``{ok, content}``. The server enforces the wall-clock
deadline by killing and replacing a worker that overruns.
"""
