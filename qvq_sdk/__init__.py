"""qvq-sdk: a blocking, requests-based client for the Qwen QVQ-72B-preview Space.

from qvq_sdk import QVQClient
for text in QVQClient().chat("What is in this picture?", images=["cat.jpg"]):
    print(text, end="", flush=True)
"""

from ._chat import ChatStream, Rewrite
from ._client import QVQClient
from ._events import Done, Event, ProcessingStarted, Progress, QueuePosition, SpaceLog, TextUpdate, WakingUp
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
    "ChatStream",
    "Done",
    "Event",
    "InputError",
    "NotFoundError",
    "ProcessingStarted",
    "Progress",
    "QVQClient",
    "QVQError",
    "QueuePosition",
    "QuotaExceededError",
    "RateLimitError",
    "Rewrite",
    "ServiceUnavailableError",
    "SpaceLog",
    "StreamError",
    "TextUpdate",
    "WakingUp",
    "__version__",
]
