"""Errors raised by the domain layer; the API maps each to one HTTP status."""

from __future__ import annotations


class TraitorError(Exception):
    """Base class of every error Traitor raises on purpose."""


class ValidationError(TraitorError):
    """Bad input: the API answers 400 with this message.

    ``field`` names the offending JSON field (camelCase, as clients send it)
    so a form can point at it.
    """

    def __init__(self, field: str | None, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}" if field else message)


class NotFoundError(TraitorError):
    """The named job, run or resource does not exist (404)."""


class ConflictError(TraitorError):
    """The request contradicts the current state (409)."""
