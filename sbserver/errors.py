"""The exception tree, and the HTTP status each error maps to.

    SBError (500)                 anything the server could not do
     +-- BadRequest (400)         malformed or invalid input, bad tokens (upstream keeps 400)
     |    +-- InvalidJSON (400)   the body is not JSON of the expected shape
     +-- Unauthorized (401)       missing credentials, wrong email/password
     +-- Forbidden (403)          authenticated, but not allowed
     +-- NotFound (404)           no such thing (or not visible to the caller)
     +-- Conflict (409)           already exists (email taken)
     +-- PayloadTooLarge (413)    request body over the configured limit
     +-- TooManyRequests (429)    rate limits
     +-- NotImplementedYet (501)  a route or method we do not serve
     +-- StoreError (500)         a backend failed (database, cache, bus, mail): internal

Every message is one line that says what was wrong; the HTTP layer renders it as plain text
followed by a newline, as StaticBackend clients expect. An *internal* error's message may quote a
driver (SQL, a file path, a host): the HTTP layer logs it under the request id and answers
``internal error (request id ...)`` instead; see ``client_message``.
"""

from __future__ import annotations


class SBError(Exception):
    status = 500
    internal = False  # True: the message is for the log only

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message.replace("\n", " ")


class BadRequest(SBError):
    status = 400


class InvalidJSON(BadRequest):
    pass


class Unauthorized(SBError):
    status = 401


class Forbidden(SBError):
    status = 403


class NotFound(SBError):
    status = 404


class Conflict(SBError):
    status = 409


class PayloadTooLarge(SBError):
    status = 413


class TooManyRequests(SBError):
    status = 429


class NotImplementedYet(SBError):
    status = 501


class StoreError(SBError):
    """A backend failed; the message may quote its driver, so clients never see it."""

    status = 500
    internal = True


def is_internal(exc: BaseException) -> bool:
    """Whether a client must not see ``exc``'s message: anything that is not an ``SBError``, an
    internal one, or a server-side error (5xx) raised from an internal one (a wrapped driver
    message). A 4xx is the client's mistake and always keeps its reason."""
    if not isinstance(exc, SBError):
        return True
    if exc.internal:
        return True
    if exc.status < 500:
        return False
    cause, depth = exc.__cause__, 0
    while cause is not None and depth < 8:
        if isinstance(cause, SBError) and cause.internal:
            return True
        cause, depth = cause.__cause__, depth + 1
    return False


def client_message(exc: BaseException, request_id: str = "") -> str:
    """The line a client may read about ``exc``: its own message, or a generic one."""
    if not is_internal(exc):
        assert isinstance(exc, SBError)
        return exc.message
    return f"internal error (request id {request_id})" if request_id else "internal error"
