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

Every message is one line that says what was wrong; the HTTP layer renders it as plain text
followed by a newline, as StaticBackend clients expect.
"""

from __future__ import annotations


class SBError(Exception):
    status = 500

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
    status = 500
