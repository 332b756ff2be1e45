"""qvq-sdk: a blocking, requests-based client for Qwen's QVQ: the QVQ-72B-preview Space, or
any OpenAI-compatible server (vLLM, SGLang, llama.cpp, DashScope, OpenRouter, ...).

from qvq_sdk import QVQClient
for text in QVQClient().chat("What is in this picture?", images=["cat.jpg"]):
    print(text, end="", flush=True)
"""

from ._chat_stream import ChatStream
from ._chunks import Reasoning, Rewrite
from ._client import QVQClient
from ._events import (
    Done,
    Event,
    ProcessingStarted,
    Progress,
    QueuePosition,
    ReasoningUpdate,
    SpaceLog,
    TextUpdate,
    Usage,
    WakingUp,
)
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
    "Reasoning",
    "ReasoningUpdate",
    "Rewrite",
    "ServiceUnavailableError",
    "SpaceLog",
    "StreamError",
    "TextUpdate",
    "Usage",
    "WakingUp",
    "__version__",
]
