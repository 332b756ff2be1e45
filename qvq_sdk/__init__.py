"""qvq-sdk: a blocking, requests-based client for the Qwen QVQ-72B-preview Space.

from qvq_sdk import QVQClient
for text in QVQClient().chat("What is in this picture?", images=["cat.jpg"]):
    print(text, end="", flush=True)
"""

from ._client import QVQClient
from ._events import Done, Event, ProcessingStarted, QueuePosition, TextUpdate
from ._version import __version__
from .errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AppError,
    AuthenticationError,
    InputError,
    NotFoundError,
    QuotaExceededError,
    QVQError,
    RateLimitError,
    ServiceUnavailableError,
    StreamError,
)

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AppError",
    "AuthenticationError",
    "Done",
    "Event",
    "InputError",
    "NotFoundError",
    "ProcessingStarted",
    "QVQClient",
    "QVQError",
    "QueuePosition",
    "QuotaExceededError",
    "RateLimitError",
    "ServiceUnavailableError",
    "StreamError",
    "TextUpdate",
    "__version__",
]
