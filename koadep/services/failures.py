"""The failures of the live services, as the steps see them.

Kept apart from :mod:`koadep.services.http` so that a step can name them without
loading the HTTP client (which commands that never call out do not need).

Examples
--------
>>> try:
...     raise ServiceUnavailable("keck-api", "no answer within 5 s")
... except ServiceError as exc:
...     print(exc.service, "|", exc)
keck-api | keck-api: no answer within 5 s
"""

from __future__ import annotations

__all__ = ["BadAnswer", "ServiceError", "ServiceUnavailable"]


class ServiceError(Exception):
    """A live service gave no usable answer.

    Attributes
    ----------
    service
        The service's name (``keck-api``, ``archiver-k1``, ...).
    """

    def __init__(self, service: str, message: str) -> None:
        super().__init__(f"{service}: {message}")
        self.service = service


class ServiceUnavailable(ServiceError):
    """The service could not be reached, timed out, answered an HTTP error, or is skipped by its breaker."""


class BadAnswer(ServiceError):
    """The service answered, but not in the documented shape."""
