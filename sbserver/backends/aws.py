"""What the AWS backends (files/s3.py, mail/ses.py) share: one boto3 session for the process."""

from __future__ import annotations

import boto3

_session: boto3.session.Session | None = None


def session() -> boto3.session.Session:
    """The process's boto3 session: it loads each service's model once (about a second per client
    otherwise) and resolves boto3's credential chain once. Clients are made on the event loop's
    thread; each client is thread-safe."""
    global _session
    if _session is None:
        _session = boto3.session.Session()
    return _session
