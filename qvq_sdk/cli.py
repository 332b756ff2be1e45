"""The ``qvq`` command: ask the Space one question and stream the answer to stdout.

Exit codes: 0 the answer is complete, 1 the Space or the network failed, 2 bad usage or
input, 130 interrupted (Ctrl-C). Errors are one line on stderr, never a traceback.
While the request waits, a status line on stderr (only when stderr is a terminal) shows
a sleeping Space waking up, the queue position, the Space's ETA, its progress and the time
elapsed. The Space's warnings and error-level messages are lines on stderr
(``qvq: warning: ...``); its info and success messages too when stderr is a terminal or
with ``--verbose``. The answer alone goes to stdout.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import threading
import time
from typing import IO, Any, Callable, Dict, List, Match, Optional, Sequence, Tuple, Union

from ._client import QVQClient
from ._constants import DEFAULT_SPACE
from ._events import Done, Event, ProcessingStarted, Progress, QueuePosition, SpaceLog, TextUpdate, WakingUp
from ._messages import Message
from ._version import __version__
from .errors import InputError, QVQError

EXAMPLES = """\
examples:
  qvq "What is the capital of France?"
  qvq "What is in this picture?" -i examples/cat.jpg   # a picture in the qvq-sdk checkout
  echo "Solve 2x + 3 = 11" | qvq - --system "Think step by step."
  qvq "hello" --base-url http://127.0.0.1:7860         # a local Gradio stand-in
  qvq "hello" --json | jq -r 'select(.type == "text") | .delta'

environment:
  HF_TOKEN       the Hugging Face token (else the token saved by huggingface-cli login)
  QVQ_BASE_URL   a Gradio server to use instead of the Space
  NO_COLOR       no colour in the status line
"""

# The protocols the command speaks (--protocol): the Space's.
PROTOCOL_CHOICES = ("queue", "call")

# How often the status line redraws its elapsed time, in seconds.
STATUS_REFRESH = 0.5


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
    parser.add_argument(
        "--space",
        metavar="ID",
        help=f"the Space id (default {DEFAULT_SPACE}); with --base-url, the Space to ask Hugging Face about",
    )
    parser.add_argument("--base-url", metavar="URL", help="the Space's or a local Gradio server's address")
    parser.add_argument("--token", metavar="T", help="a Hugging Face token (default: HF_TOKEN or the saved token)")
    parser.add_argument(
        "--protocol", choices=PROTOCOL_CHOICES, default="queue", help="the Space's protocol (default queue)"
    )
    parser.add_argument(
        "--timeout", type=float, metavar="S", help="seconds to wait to connect and between reads (default 10, 60)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON event per line instead of the text")
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="print the Space's info and success messages on stderr even when it is not a terminal",
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
    """The waiting line on stderr: queue position, ETA and elapsed time, redrawn while waiting.

    Shown only when stderr is a terminal; dimmed unless ``NO_COLOR`` is set. Lines printed
    through :meth:`print` while it is shown go above it.
    """

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._enabled = stream.isatty()
        self._dim = ("\x1b[2m", "\x1b[0m") if not os.environ.get("NO_COLOR") else ("", "")
        self._started = time.monotonic()
        self._text = "connecting"
        # Set while the text counts its own seconds: (seconds at `since`, monotonic `since`).
        self._counting: Optional[Any] = None
        self._shown = False
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def __enter__(self) -> _Status:
        if self._enabled:
            self._thread = threading.Thread(target=self._refresh, name="qvq-status", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _refresh(self) -> None:
        while not self._done.wait(STATUS_REFRESH):
            self._draw()

    @property
    def terminal(self) -> bool:
        """Whether the stream is a terminal (so the line is shown)."""
        return self._enabled

    def _draw(self) -> None:
        with self._lock:
            self._draw_locked()

    def _draw_locked(self) -> None:
        if self._done.is_set():
            return
        now = time.monotonic()
        if self._counting is not None:
            seconds, since = self._counting
            line = f"{self._text}, {seconds + now - since:.0f} s"
        else:
            line = f"{self._text} · {now - self._started:.0f} s"
        on, off = self._dim
        self._stream.write(f"\r\x1b[2K{on}{line}{off}")
        self._stream.flush()
        self._shown = True

    def show(self, text: str, *, seconds: Optional[float] = None) -> None:
        """Shows ``text``, followed by the time elapsed, or by ``seconds`` counted on from now."""
        with self._lock:
            self._text = text
            self._counting = None if seconds is None else (seconds, time.monotonic())
            if self._enabled:
                self._draw_locked()

    def print(self, line: str) -> None:
        """Writes a line on the stream, clearing the status line first and redrawing it after."""
        with self._lock:
            if self._shown:
                self._stream.write("\r\x1b[2K")
            self._stream.write(line + "\n")
            if self._shown:
                self._draw_locked()
            self._stream.flush()

    def stop(self) -> None:
        """Clears the line for good (the answer or an error follows)."""
        with self._lock:
            self._done.set()
            if self._shown:
                self._stream.write("\r\x1b[2K")
                self._stream.flush()
                self._shown = False
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()


def _describe_progress(event: Progress) -> str:
    """``Thinking 33%``, ``Thinking 2/6 steps``, ``Thinking 33% (2/6 steps)``, ``Thinking step 3``."""
    desc = event.desc or "progress"
    steps = None
    if event.index is not None:
        unit = f" {event.unit}" if event.unit else ""
        steps = (
            f"{event.index}/{event.length}{unit}"
            if event.length is not None
            else f"{event.unit or 'step'} {event.index}"
        )
    if event.progress is not None:
        percent = f"{event.progress * 100:.0f}%"
        return f"{desc} {percent} ({steps})" if steps is not None else f"{desc} {percent}"
    return f"{desc} {steps}" if steps is not None else desc


def _describe_log(event: SpaceLog) -> str:
    """One line: ``qvq: warning: <message>`` (with the title when it is not the level's own)."""
    message = " ".join(event.message.split())
    title = " ".join((event.title or "").split())
    if title and title.lower() != event.level:
        message = f"{title}: {message}"
    return f"qvq: {event.level}: {message}"


def _describe_wait(event: Event) -> Optional[str]:
    if isinstance(event, QueuePosition) and event.rank is not None:
        size = f" of {event.queue_size}" if event.queue_size is not None else ""
        eta = f", ETA {event.eta:.0f} s" if event.eta is not None else ""
        return f"queue: position {event.rank + 1}{size}{eta}"
    if isinstance(event, ProcessingStarted):
        eta = f", ETA {event.eta:.0f} s" if event.eta is not None else ""
        return f"generating{eta}"
    if isinstance(event, Progress):
        return _describe_progress(event)
    return None


def _as_json(event: Event) -> Dict[str, Any]:
    if isinstance(event, QueuePosition):
        return {"type": "queue", "rank": event.rank, "queue_size": event.queue_size, "eta": event.eta}
    if isinstance(event, ProcessingStarted):
        return {"type": "started", "eta": event.eta}
    if isinstance(event, TextUpdate):
        return {"type": "text", "delta": event.delta, "replaced": event.replaced}
    if isinstance(event, SpaceLog):
        return {"type": "log", "level": event.level, "message": event.message, "title": event.title}
    if isinstance(event, Progress):
        return {
            "type": "progress",
            "progress": event.progress,
            "index": event.index,
            "length": event.length,
            "unit": event.unit,
            "desc": event.desc,
        }
    if isinstance(event, WakingUp):
        return {"type": "waking", "stage": event.stage, "waited": event.waited}
    assert isinstance(event, Done)
    return {"type": "done", "text": event.text}


def _run(args: argparse.Namespace, out: IO[str], status: _Status) -> None:
    prompt = sys.stdin.read().rstrip("\n") if args.prompt == "-" else args.prompt
    options: Dict[str, Any] = {}
    if args.timeout is not None:
        options["timeout"] = args.timeout
    if args.space is not None:
        options["space"] = args.space
    show_info = args.verbose or status.terminal
    with QVQClient(args.token, base_url=args.base_url, protocol=args.protocol, **options) as client:
        events = client.events(_messages(prompt, args.system), images=args.image or None)
        ended_with_newline = True
        for event in events:
            if isinstance(event, SpaceLog) and (show_info or event.log_level >= logging.WARNING):
                if not ended_with_newline and not args.json and _isatty(out):
                    out.write("\n")  # the answer goes on below the message, not after it
                    out.flush()
                    ended_with_newline = True
                status.print(_describe_log(event))
            if args.json:
                out.write(json.dumps(_as_json(event), ensure_ascii=False) + "\n")
                out.flush()
                continue
            if isinstance(event, WakingUp):
                status.show(f"the Space is waking up ({event.stage})", seconds=event.waited)
                continue
            waiting = _describe_wait(event)
            if waiting is not None:
                status.show(waiting)
            elif isinstance(event, TextUpdate) and event.delta:
                status.stop()
                if event.replaced and not ended_with_newline:
                    out.write("\n")
                out.write(event.delta)
                out.flush()
                ended_with_newline = event.delta.endswith("\n")
        status.stop()
        if not ended_with_newline:
            out.write("\n")
            out.flush()


_Replacement = Union[str, Callable[[Match[str]], str]]


def _cli_words(args: argparse.Namespace) -> List[Tuple[str, _Replacement]]:
    """The library's messages name its Python API (``Use protocol="queue"``, ``raise
    timeout=``); the command's user knows its flags. The one table, in order, from a pattern
    of the API's words to the command's: applied to every error message the command prints."""
    user = 0 if args.system is None else 1  # the prompt's index in the messages (see _messages)
    from_environment = args.base_url is None and args.space is None and bool(os.environ.get("QVQ_BASE_URL"))

    def image(match: Match[str]) -> str:  # images[1] → "-i #2", or "-i" when there is one
        return "-i" if len(args.image) == 1 else f"-i #{int(match.group(1)) + 1}"

    protocols = "|".join(PROTOCOL_CHOICES)
    return [
        (rf'\bprotocol="({protocols})"', r"--protocol \1"),
        # A sentence that sends the reader to a protocol the command does not speak ("openai").
        (rf' ?[^.]*\bprotocol="(?!(?:{protocols})")\w+"[^.]*\.', ""),
        (r"\btimeout=", "--timeout"),
        (r"\btoken=", "--token"),
        (r"\bthe token argument\b", "--token"),
        (r"\bpass a token\b", "pass --token"),
        (r"\bspace=", "--space"),
        (r"\bbase_url=", "--base-url"),
        (r"\bthe Space id or base_url\b", "--space or --base-url"),
        (r"^(timeout|space)\b", r"--\1"),  # an InputError about an option starts with its name
        (r"^base_url\b", "QVQ_BASE_URL" if from_environment else "--base-url"),
        # The command has no --deadline or --wake-timeout: name the limit, not the keyword.
        (r" ?\((?:deadline|wake_timeout)=\)", ""),
        (r"\((?:deadline|wake_timeout)=", "("),
        (r",? or raise (?:deadline|wake_timeout)=\.?", "."),
        (
            r"\bthe host name could not be resolved\b",
            r"\g<0> (--base-url URL or QVQ_BASE_URL=URL points qvq at another server)",
        ),
        (rf"^messages\[{user}\] has no text and no image\b", "the prompt is empty"),
        (r"^messages\[0\] has no text and no image\b", "--system is empty"),  # only with --system
        (r"\bimages\[(\d+)\]", image),
    ]


def _in_cli_words(message: str, args: argparse.Namespace) -> str:
    """``message`` on one line, in the command's words rather than the Python API's."""
    message = " ".join(message.split())
    for pattern, replacement in _cli_words(args):
        message = re.sub(pattern, replacement, message)
    return message


def _isatty(stream: IO[str]) -> bool:
    isatty: Optional[Callable[[], bool]] = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if isatty is not None else False
    except ValueError:  # closed
        return False


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(argv)
    with _Status(sys.stderr) as status:
        try:
            _run(args, sys.stdout, status)
        except KeyboardInterrupt:
            status.stop()
            sys.stderr.write("qvq: interrupted\n")
            return 130
        except BrokenPipeError:
            # The reader went away (``qvq ... | head``): stop quietly, and keep Python from
            # complaining when it flushes stdout at exit.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            return 1
        except QVQError as exc:
            status.stop()
            message = _in_cli_words(str(exc), args)
            if args.json:
                sys.stdout.write(json.dumps({"type": "error", "error": type(exc).__name__, "message": message}) + "\n")
            sys.stdout.flush()
            sys.stderr.write(f"qvq: error: {message}\n")
            return 2 if isinstance(exc, InputError) else 1
    return 0
