"""Defaults and fixed numbers of the client, in one place."""

DEFAULT_SPACE = "Qwen/QVQ-72B-preview"
# Hugging Face's Hub, asked for a Space's state when the Space answers 404 or 503;
# $HF_ENDPOINT replaces it (huggingface_hub's convention, used for mirrors).
DEFAULT_HUB = "https://huggingface.co"
ENDPOINT_NAME = "generate"

LABEL = "Qwen QVQ-72B"
DEFAULT_MODEL = "qwen-qvq-72b-preview"
MODEL_ALIASES = {"qvq-72b": DEFAULT_MODEL}
# On an OpenAI-compatible server: the model's name on Hugging Face (what vLLM serves by
# default); the seed's names for it map to it.
OPENAI_DEFAULT_MODEL = "Qwen/QVQ-72B-Preview"
OPENAI_MODEL_ALIASES = {"qvq-72b": OPENAI_DEFAULT_MODEL, "qwen-qvq-72b-preview": OPENAI_DEFAULT_MODEL}

# Seconds to connect, and seconds to wait between two reads. Gradio sends a
# heartbeat every 15 s, so a quiet minute means the stream is dead.
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_READ_TIMEOUT = 60.0
DEFAULT_MAX_RETRIES = 2
# How long a chat waits, by default, for a sleeping or starting Space to run (QVQClient's
# wake_timeout=): a Space can take minutes to wake up or build.
DEFAULT_WAKE_TIMEOUT = 300.0

# Retry backoff: 0.5 s doubling up to 8 s, with jitter; a server's Retry-After
# is honoured up to this many seconds (beyond it we give up and report it).
INITIAL_RETRY_DELAY = 0.5
MAX_RETRY_DELAY = 8.0
MAX_RETRY_AFTER = 60.0
RETRYABLE_STATUS = frozenset({429, 502, 503, 504})
# The statuses that say a job was not queued: only these are retried for a job start.
REFUSED_STATUS = frozenset({429, 503})

MAX_REDIRECTS = 5
# Room for many threads streaming through one client at once: each chat holds
# one connection for its whole stream.
POOL_MAXSIZE = 64

# The Space takes one image per request (an OpenAI-compatible server takes several).
MAX_IMAGES = 1

# How much of an error body an exception keeps.
BODY_EXCERPT_CHARS = 300
# How much of an error body we read at most (a traceback can be megabytes).
ERROR_BODY_READ_LIMIT = 64 * 1024

STREAM_READ_SIZE = 64 * 1024

# After an answer completes, the rest of its stream (Gradio's close_stream and the last chunk,
# sent at once) is read for at most this long and this much, so that its connection can be
# reused; a stream that does not end by then is closed instead.
DRAIN_SECONDS = 0.5
DRAIN_BYTES = 64 * 1024
