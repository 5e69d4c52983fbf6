"""Errors of the client layer that callers catch without importing a backend (no openai SDK needed).

`RequestRejected` is the one a labeler records per conversation and moves on from: the endpoint
understood the request and refused it for reasons of that request alone (context length, a bad
parameter). Every other `LLMRequestError` (bad key, wrong URL, unreachable server, retries spent)
would hit every later request too, so it stops the run.
"""
from __future__ import annotations

from igft.errors import IgftError


class MissingAPIKey(IgftError):
    """No API key in the environment for a hosted endpoint."""


class LLMRequestError(IgftError):
    """The endpoint rejected a request, or kept failing after every retry."""


class RequestRejected(LLMRequestError):
    """A non-retryable 4xx for this request only (e.g. context length); `status` and `server_message` say why."""

    def __init__(self, message: str, status: int, server_message: str):
        super().__init__(message)
        self.status = status
        self.server_message = server_message


class EndpointUnreachable(LLMRequestError):
    """Nothing answers at the base URL (connection refused or connect timeout)."""
