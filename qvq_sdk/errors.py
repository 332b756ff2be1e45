"""The exceptions qvq-sdk raises, all under :class:`QVQError`::

    QVQError
    ├── InputError (also a ValueError)    bad messages, images or options; raised before the wire
    ├── APIConnectionError                refused, reset, DNS, TLS
    │   └── APITimeoutError               connect or read timeout
    ├── APIStatusError                    .status_code, short .body; one subclass per case:
    │   ├── AuthenticationError           401, 403
    │   ├── NotFoundError                 404: no such Space, route or endpoint
    │   ├── RateLimitError                429 (.retry_after)
    │   └── ServiceUnavailableError       5xx, 410: queue full, Space asleep, paused or broken
    ├── AppError                          the Space's app failed; .message (None when hidden)
    │   └── QuotaExceededError            ZeroGPU quota; .retry_after in seconds
    └── StreamError                       malformed reply, unknown session, stream ended early

``str(error)`` is a sentence for the person reading it: what happened and what to
do. No exception ever holds the token. Every error survives ``pickle`` and
``copy.copy``/``copy.deepcopy`` (so it crosses a ``ProcessPoolExecutor`` or a task queue)
with its type, message and attributes.
"""

from __future__ import annotations

from typing import Any, Optional, Tuple, Type

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AppError",
    "AuthenticationError",
    "InputError",
    "NotFoundError",
    "QVQError",
    "QuotaExceededError",
    "RateLimitError",
    "ServiceUnavailableError",
    "StreamError",
]


class QVQError(Exception):
    """Base class of every error qvq-sdk raises."""

    def __reduce__(self) -> Tuple[Any, ...]:
        # Exception's own reduce rebuilds an error as ``type(self)(*self.args)``: that fails
        # when a keyword is required (``status_code=``) and drops the others. Rebuild it
        # without ``__init__`` instead, then restore its ``__dict__``: every attribute.
        return (_rebuild, (type(self), self.args), self.__dict__ or None)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


class InputError(QVQError, ValueError):
    """A message, image or option is not acceptable; nothing was sent to the Space.

    ``.input`` names the offending argument, e.g. ``"images[1]"`` or ``"timeout"``.
    """

    def __init__(self, message: str, *, input: Optional[str] = None) -> None:
        super().__init__(message)
        self.input = input


class APIConnectionError(QVQError):
    """The connection to the Space could not be made or broke (refused, reset, DNS, TLS)."""


class APITimeoutError(APIConnectionError):
    """The Space did not connect, or did not send anything, within the timeout."""


class APIStatusError(QVQError):
    """The Space (or the proxy in front of it) answered with an HTTP error status."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        body: Optional[str] = None,
        url: Optional[str] = None,
        request_id: Optional[str] = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.body = body
        self.url = url
        self.request_id = request_id
        # For a Space id's 404/503: its runtime stage from Hugging Face ("SLEEPING", ...).
        self.space_stage: Optional[str] = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status_code={self.status_code}, message={str(self)!r})"


class AuthenticationError(APIStatusError):
    """HTTP 401 or 403: the token is missing, invalid, or has no access to the Space."""


class NotFoundError(APIStatusError):
    """HTTP 404, or a Space without the ``generate`` endpoint."""


class RateLimitError(APIStatusError):
    """HTTP 429. ``.retry_after`` is the server's advice in seconds, when it gave one."""

    def __init__(self, message: str, *, retry_after: Optional[float] = None, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.retry_after = retry_after


class ServiceUnavailableError(APIStatusError):
    """HTTP 5xx or 410: the queue is full, or the Space is asleep, paused or broken."""


class AppError(QVQError):
    """The Space's app raised an error while answering.

    ``.message`` is the app's own message, or ``None`` when the Space hid it.
    """

    def __init__(self, description: str, *, message: Optional[str] = None) -> None:
        super().__init__(description)
        self.message = message


class QuotaExceededError(AppError):
    """The Space ran out of ZeroGPU quota for this account.

    ``.retry_after`` is how many seconds the Space said to wait, when it said.
    """

    def __init__(self, description: str, *, message: Optional[str] = None, retry_after: Optional[float] = None) -> None:
        super().__init__(description, message=message)
        self.retry_after = retry_after


class StreamError(QVQError):
    """The Space's reply broke the protocol: a malformed event, an unknown session,
    or a stream that ended before its completion message."""


def _rebuild(cls: Type[QVQError], args: Tuple[Any, ...]) -> QVQError:
    """Unpickling and copying (see :meth:`QVQError.__reduce__`): the error of type ``cls``
    with these ``args``, made without calling its ``__init__``; pickle then restores its
    attributes. (Its name is part of every pickled error: keep it.)"""
    error: QVQError = cls.__new__(cls)
    error.args = args
    return error
