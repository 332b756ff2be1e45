"""What the benchmarks measure: the clients, the cases, and the constants of each scenario.

A leaf module (standard library only, no imports of its own) that the other modules of
``run.py`` share, so that none of them needs another for its definitions.
"""

GRADIO = "5.9.1"  # the stand-in's server: the Space's Gradio version

#: client -> (venv, label)
CLIENTS = {
    "raw": ("sdk", "raw floor"),
    "raw-timeout": ("sdk", "raw floor + timeout"),
    "sdk-queue": ("sdk", "qvq-sdk queue"),
    "sdk-call": ("sdk", "qvq-sdk call"),
    "gradio_client": ("gradio_client", "gradio_client"),
    "g4f": ("g4f", "g4f 0.5.3.1"),
}
#: the loopback scenario's cases
CASES = ["short", "long", "fine", "upload", "concurrent"]
BASELINE = "sdk-queue"
#: the floor the issue's targets are defined against, and the same floor with qvq-sdk's
#: default timeout=(10, 60) (shown beside it, for information)
FLOOR = "raw"
TIMEOUT_FLOOR = "raw-timeout"
CONCURRENCY = 16
#: loopback, short case: new clients per process after its warm chats, one chat each (the cold
#: samples; each opens a new connection and reads /config itself)
LOOP_COLD_CLIENTS = 8
IMAGE_SIDE = 2600  # 2600 x 2600 RGB, stored uncompressed in a PNG: 20.3 MB

#: the network scenario: its clients, round-trip time and sequential chats per client process
NET_CLIENTS = ["raw", "sdk-queue", "gradio_client"]
NET_RTT = 0.040
NET_CHATS = 8
#: further new clients per network process, one chat each: with the first, its cold samples
NET_COLD_CLIENTS = 2

#: the openai scenario (openai_stub.py on 127.0.0.1): its clients, client -> (venv, label)
OPENAI_CLIENTS = {
    "raw-openai": ("sdk", "raw floor"),
    "sdk-openai": ("sdk", "qvq-sdk openai"),
    "openai-python": ("openai", "openai-python"),
}
OPENAI_CASES = ["long", "fine", "short"]
OPENAI_BASELINE = "sdk-openai"
OPENAI_FLOOR = "raw-openai"
OPENAI_PEER = "openai-python"
#: the short case: sequential chats through one client per process, then new clients, one chat each
OPENAI_CHATS = 8
OPENAI_COLD_CLIENTS = 8
