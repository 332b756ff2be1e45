"""The ``qvq`` command: ask the Space one question and stream the answer to stdout.

Exit codes: 0 the answer is complete, 1 the Space or the network failed, 2 bad usage or
input, 130 interrupted (Ctrl-C). Errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import IO, List, Optional, Sequence

from ._client import QVQClient
from ._constants import DEFAULT_SPACE
from ._events import ProcessingStarted, QueuePosition, TextUpdate
from ._messages import Message
from ._version import __version__
from .errors import InputError, QVQError

EXAMPLES = """\
examples:
  qvq "What is the capital of France?"
  qvq "What is in this picture?" -i cat.jpg
  echo "Solve 2x + 3 = 11" | qvq - --system "Think step by step."
  qvq "hello" --base-url http://127.0.0.1:7860      # a local Gradio stand-in
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qvq",
        description="Chat with the Qwen QVQ-72B-preview Space and stream its answer to stdout.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("prompt", help="the question; '-' reads it from stdin")
    parser.add_argument(
        "-i", "--image", action="append", default=[], metavar="IMAGE", help="an image path or http(s) URL"
    )
    parser.add_argument("--system", metavar="TEXT", help="a system message to put before the prompt")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--space", metavar="ID", help=f"the Space id (default {DEFAULT_SPACE})")
    where.add_argument("--base-url", metavar="URL", help="the Space's or a local Gradio server's address")
    parser.add_argument("--token", metavar="T", help="a Hugging Face token (default: HF_TOKEN or the saved token)")
    parser.add_argument(
        "--protocol", choices=("queue", "call"), default="queue", help="the Space's protocol (default queue)"
    )
    parser.add_argument(
        "--timeout", type=float, metavar="S", help="seconds to wait to connect and between reads (default 10, 60)"
    )
    parser.add_argument("--version", action="version", version=f"qvq {__version__}")
    return parser


def _messages(prompt: str, system: Optional[str]) -> List[Message]:
    messages: List[Message] = []
    if system is not None:
        messages.append({"role": "system", "content": system})
    messages.append({"role": "user", "content": prompt})
    return messages


class _Status:
    """The queue position line on stderr, shown only when stderr is a terminal."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._enabled = stream.isatty()
        self._shown = False

    def show(self, text: str) -> None:
        if self._enabled:
            self._stream.write(f"\r\x1b[2K{text}")
            self._stream.flush()
            self._shown = True

    def clear(self) -> None:
        if self._shown:
            self._stream.write("\r\x1b[2K")
            self._stream.flush()
            self._shown = False


def _run(args: argparse.Namespace, out: IO[str], status: _Status) -> None:
    prompt = sys.stdin.read().rstrip("\n") if args.prompt == "-" else args.prompt
    options = {}
    if args.timeout is not None:
        options["timeout"] = args.timeout
    if args.space is not None:
        options["space"] = args.space
    with QVQClient(args.token, base_url=args.base_url, protocol=args.protocol, **options) as client:
        ended_with_newline = True
        for event in client.events(_messages(prompt, args.system), images=args.image or None):
            if isinstance(event, QueuePosition):
                if event.rank is not None:
                    size = f" of {event.queue_size}" if event.queue_size is not None else ""
                    eta = f", about {event.eta:.0f} s" if event.eta is not None else ""
                    status.show(f"queue: position {event.rank + 1}{size}{eta}")
            elif isinstance(event, ProcessingStarted):
                status.show("generating...")
            elif isinstance(event, TextUpdate) and event.delta:
                status.clear()
                if event.replaced and not ended_with_newline:
                    out.write("\n")
                out.write(event.delta)
                out.flush()
                ended_with_newline = event.delta.endswith("\n")
        status.clear()
        if not ended_with_newline:
            out.write("\n")
            out.flush()


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(argv)
    status = _Status(sys.stderr)
    try:
        _run(args, sys.stdout, status)
    except KeyboardInterrupt:
        status.clear()
        sys.stderr.write("qvq: interrupted\n")
        return 130
    except BrokenPipeError:
        # The reader went away (``qvq ... | head``): stop quietly, and keep Python from
        # complaining when it flushes stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except QVQError as exc:
        status.clear()
        sys.stdout.flush()
        sys.stderr.write(f"qvq: error: {' '.join(str(exc).split())}\n")
        return 2 if isinstance(exc, InputError) else 1
    return 0
