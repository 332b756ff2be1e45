"""The ``qvq`` command: ask QVQ one question (the Space, or an OpenAI-compatible server with
``--protocol openai``) and stream the answer to stdout.

Exit codes: 0 the answer is complete, 1 the server or the network failed, 2 bad usage or
input, 130 interrupted (Ctrl-C). Errors are one line on stderr, never a traceback.
While the request waits, a status line on stderr (only when stderr is a terminal) shows
a sleeping Space waking up, the queue position, the Space's ETA, its progress and the time
elapsed. The Space's warnings and error-level messages are lines on stderr
(``qvq: warning: ...``); its info and success messages too when stderr is a terminal or
with ``--verbose``. The answer goes to stdout, after the model's reasoning when an
OpenAI-compatible server sends it apart (dimmed on a terminal; left out with
``--no-reasoning``); an answer cut at the token limit is a warning on stderr.
"""

from __future__ import annotations

import argparse
import dataclasses
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
from ._events import (
    Done,
    Event,
    ProcessingStarted,
    Progress,
    QueuePosition,
    ReasoningUpdate,
    SpaceLog,
    TextUpdate,
    WakingUp,
)
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
  qvq "What is it?" -i examples/cat.jpg --protocol openai --base-url http://127.0.0.1:8000/v1  # vLLM

environment:
  HF_TOKEN       the Hugging Face token (else the token saved by huggingface-cli login)
  QVQ_BASE_URL   a server to use instead of the Space (when neither --base-url nor --space is given)
  QVQ_PROTOCOL   its protocol (queue, call or openai), with QVQ_BASE_URL only; --protocol wins
  QVQ_API_KEY    the API key for --protocol openai (else no key, or HF_TOKEN to Hugging Face's hosts)
  NO_COLOR       no colour in the status line, and the reasoning not dimmed
"""

# The protocols the command speaks (--protocol): the Space's two, and OpenAI-compatible servers'.
PROTOCOL_CHOICES = ("queue", "call", "openai")

# How often the status line redraws its elapsed time, in seconds.
STATUS_REFRESH = 0.5

# The reasoning on a terminal: dimmed (SGR 2), then every attribute reset (SGR 0).
DIM, RESET = "\x1b[2m", "\x1b[0m"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qvq",
        description=(
            "Chat with Qwen's QVQ and stream its answer to stdout: the QVQ-72B-preview Space, or an "
            "OpenAI-compatible server (vLLM, DashScope, OpenRouter, ...) with --protocol openai."
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("prompt", help="the question; '-' reads it from stdin")
    parser.add_argument(
        "-i",
        "--image",
        action="append",
        default=[],
        metavar="IMAGE",
        help="an image path or http(s) URL (the Space takes one; --protocol openai several)",
    )
    parser.add_argument("--system", metavar="TEXT", help="a system message to put before the prompt")
    parser.add_argument(
        "--space",
        metavar="ID",
        help=f"the Space id (default {DEFAULT_SPACE}); with --base-url, the Space to ask Hugging Face about",
    )
    parser.add_argument(
        "--base-url",
        metavar="URL",
        help="the Space's or a local Gradio server's address; with --protocol openai, the server's API root "
        "(e.g. http://127.0.0.1:8000/v1)",
    )
    parser.add_argument(
        "--token",
        metavar="T",
        help="a Hugging Face token (default: HF_TOKEN or the saved token); with --protocol openai, the API key "
        "(default: QVQ_API_KEY)",
    )
    parser.add_argument(
        "--protocol",
        choices=PROTOCOL_CHOICES,
        help="queue or call: the Space's two protocols; openai: an OpenAI-compatible server at --base-url "
        "(default: QVQ_PROTOCOL when QVQ_BASE_URL is used, else queue)",
    )
    parser.add_argument(
        "--model",
        metavar="M",
        help="the model to ask for, as the server names it (--protocol openai; default Qwen/QVQ-72B-Preview)",
    )
    parser.add_argument(
        "--max-tokens",
        type=int,
        metavar="N",
        help="the most tokens to generate, the reasoning's included on most servers (--protocol openai; "
        "default: the server's)",
    )
    parser.add_argument(
        "--temperature",
        type=float,
        metavar="T",
        help="the sampling temperature (--protocol openai; default: the server's)",
    )
    parser.add_argument(
        "--no-reasoning",
        action="store_true",
        help="leave the model's reasoning out: print the answer alone (--protocol openai)",
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


def _as_json(event: Event, openai: bool, reasoning: bool) -> Optional[Dict[str, Any]]:
    """The event's JSON line (None: no line). ``openai``: the done line carries the reasoning
    (unless not ``reasoning``), the finish reason and the usage; the Space's is its text alone."""
    if isinstance(event, QueuePosition):
        return {"type": "queue", "rank": event.rank, "queue_size": event.queue_size, "eta": event.eta}
    if isinstance(event, ProcessingStarted):
        return {"type": "started", "eta": event.eta}
    if isinstance(event, ReasoningUpdate):
        return {"type": "reasoning", "delta": event.delta} if reasoning else None
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
    done: Dict[str, Any] = {"type": "done", "text": event.text}
    if openai:
        if reasoning:
            done["reasoning"] = event.reasoning
        done["finish_reason"] = event.finish_reason
        done["usage"] = dataclasses.asdict(event.usage) if event.usage is not None else None
    return done


class _Answer:
    """What goes to stdout: the model's reasoning, then the answer, one newline at the end.

    The reasoning is dimmed when ``dim`` (stdout is a terminal and ``NO_COLOR`` is unset):
    :data:`DIM` before it, :data:`RESET` before anything else is printed (the answer, a line
    on stderr, an error, an interrupt) and at the end, so the terminal is never left dimmed.
    A blank line separates the reasoning from the answer, dimmed or not.
    """

    def __init__(self, stream: IO[str], *, dim: bool) -> None:
        self.stream = stream
        self.terminal = _isatty(stream)
        self._dim = dim
        self._dimmed = False  # DIM written (or about to be) and not reset yet
        self._part: Optional[str] = None  # "reasoning" or "text": what was printed last
        self._tail = ""  # the last two characters printed

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self._tail = (self._tail + text)[-2:]

    def _newlines(self) -> int:
        """How many newlines end what was printed (2 when nothing was: as after a blank line)."""
        if not self._tail:
            return 2
        return len(self._tail) - len(self._tail.rstrip("\n"))

    def _undim(self) -> None:
        if self._dimmed:
            self._dimmed = False
            self.stream.write(RESET)

    def reasoning(self, delta: str) -> None:
        if self._part == "text":
            self._write("\n" * max(0, 2 - self._newlines()))
        if self._dim and not self._dimmed:
            self._dimmed = True  # first: an interrupt in the write still resets
            self.stream.write(DIM)
        self._write(delta)
        self._part = "reasoning"
        self.stream.flush()

    def text(self, delta: str, replaced: bool) -> None:
        if self._part == "reasoning":
            self._undim()
            self._write("\n" * max(0, 2 - self._newlines()))  # a blank line between them
        elif replaced and self._newlines() == 0:
            self._write("\n")  # the rewritten text starts on a new line
        self._write(delta)
        self._part = "text"
        self.stream.flush()

    def break_line(self) -> None:
        """Before a line on stderr: the style reset, and the line ended (on a terminal only:
        into a file or a pipe, the answer is left whole)."""
        if self.terminal:
            self._undim()
            if self._newlines() == 0:
                self._write("\n")
            self.stream.flush()

    def finish(self) -> None:
        """The end: the style reset, and a final newline."""
        self._undim()
        if self._newlines() == 0:
            self._write("\n")
        self.stream.flush()

    def abort(self) -> None:
        """An error or an interrupt: the style reset, and on a terminal the line ended, so the
        message goes on a line of its own."""
        try:
            self.break_line()
            self._undim()  # (dimmed only on a terminal: break_line did it)
            self.stream.flush()
        except (OSError, ValueError):  # stdout closed or gone: nothing to reset
            pass


def _cut_note(done: Done, max_tokens: Optional[int]) -> str:
    """The warning for an answer cut at the token limit (``finish_reason`` ``"length"``)."""
    limit = f"--max-tokens {max_tokens}" if max_tokens is not None else "the server's token limit"
    advice = "raise --max-tokens" if max_tokens is not None else "ask for more with --max-tokens"
    if not done.text and done.reasoning:
        return (
            f"qvq: warning: the model was cut at {limit} while still reasoning, before any answer "
            f'(finish_reason "length"); {advice} (the reasoning counts)'
        )
    return f'qvq: warning: the answer was cut at {limit} (finish_reason "length"); {advice} for the rest'


def _run(args: argparse.Namespace, answer: _Answer, status: _Status) -> None:
    prompt = sys.stdin.read().rstrip("\n") if args.prompt == "-" else args.prompt
    options: Dict[str, Any] = {}
    if args.timeout is not None:
        options["timeout"] = args.timeout
    if args.space is not None:
        options["space"] = args.space
    if args.protocol is not None:  # else the library's default: QVQ_PROTOCOL with QVQ_BASE_URL, or queue
        options["protocol"] = args.protocol
    if args.model is not None:
        options["model"] = args.model
    generation: Dict[str, Any] = {}
    if args.max_tokens is not None:
        generation["max_tokens"] = args.max_tokens
    if args.temperature is not None:
        generation["temperature"] = args.temperature
    show_info = args.verbose or status.terminal
    show_reasoning = not args.no_reasoning
    out = answer.stream
    done: Optional[Done] = None
    with QVQClient(args.token, base_url=args.base_url, **options) as client:
        openai = client.protocol == "openai"
        events = client.events(_messages(prompt, args.system), images=args.image or None, **generation)
        hidden_reasoning = False  # the status line says the model is reasoning
        for event in events:
            if isinstance(event, Done):
                done = event
            if isinstance(event, SpaceLog) and (show_info or event.log_level >= logging.WARNING):
                if not args.json:
                    answer.break_line()  # the answer goes on below the message, not after it
                status.print(_describe_log(event))
            if args.json:
                document = _as_json(event, openai, show_reasoning)
                if document is not None:
                    out.write(json.dumps(document, ensure_ascii=False) + "\n")
                    out.flush()
                continue
            if isinstance(event, WakingUp):
                status.show(f"the Space is waking up ({event.stage})", seconds=event.waited)
                continue
            waiting = _describe_wait(event)
            if waiting is not None:
                status.show(waiting)
            elif isinstance(event, ReasoningUpdate) and event.delta:
                if show_reasoning:
                    status.stop()
                    answer.reasoning(event.delta)
                elif not hidden_reasoning:
                    hidden_reasoning = True
                    status.show("reasoning (--no-reasoning: not shown)")
            elif isinstance(event, TextUpdate) and event.delta:
                status.stop()
                answer.text(event.delta, event.replaced)
        status.stop()
        if not args.json:
            answer.finish()
    if done is not None and done.finish_reason == "length":
        status.print(_cut_note(done, args.max_tokens))


_Replacement = Union[str, Callable[[Match[str]], str]]


def _cli_words(args: argparse.Namespace) -> List[Tuple[str, _Replacement]]:
    """The library's messages name its Python API (``Use protocol="queue"``, ``raise
    timeout=``); the command's user knows its flags. The one table, in order, from a pattern
    of the API's words to the command's: applied to every error message the command prints."""
    user = 0 if args.system is None else 1  # the prompt's index in the messages (see _messages)
    from_environment = args.base_url is None and args.space is None and bool(os.environ.get("QVQ_BASE_URL"))

    def image(match: Match[str]) -> str:  # images[1] → "-i #2", or "-i" when there is one
        return "-i" if len(args.image) == 1 else f"-i #{int(match.group(1)) + 1}"

    def flags(match: Match[str]) -> str:  # "max_tokens, temperature" → "--max-tokens, --temperature"
        return re.sub(r"\w+", lambda name: "--" + name.group().replace("_", "-"), match.group())

    protocols = "|".join(PROTOCOL_CHOICES)
    return [
        (rf'\bprotocol="({protocols})"', r"--protocol \1"),
        # --protocol takes only its choices: a bad protocol came from the environment.
        (r"^protocol must be\b", "QVQ_PROTOCOL must be"),
        (r"\btimeout=", "--timeout"),
        (r"\btoken=", "--token"),
        (r"\bthe token argument\b", "--token"),
        (r"\bpass a token\b", "pass --token"),
        (r"\bspace=", "--space"),
        (r"\bbase_url=", "--base-url"),
        (r"\bthe Space id or base_url\b", "--space or --base-url"),
        (r"\bmodel=", "--model"),
        (r"\bmax_tokens=", "--max-tokens"),
        (r"\btemperature=", "--temperature"),
        (r"^(timeout|space|model)\b", r"--\1"),  # an InputError about an option starts with its name
        (r"^(?:max_tokens|temperature)(?:, (?:max_tokens|temperature))*\b", flags),
        (r"\bmax_tokens\b", "--max-tokens"),
        # A number the command parsed: "or None" is the Python API's way to leave it unset.
        (r"^(--max-tokens|--temperature) must be (.+?) or None,", r"\1 must be \2,"),
        (r"^--model must be a non-empty str, not .*", "--model is empty."),
        (r"^base_url\b", "QVQ_BASE_URL" if from_environment else "--base-url"),
        (r"\bCheck base_url\b", "Check QVQ_BASE_URL" if from_environment else "Check --base-url"),
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
    answer = _Answer(sys.stdout, dim=_isatty(sys.stdout) and not os.environ.get("NO_COLOR"))
    with _Status(sys.stderr) as status:
        try:
            _run(args, answer, status)
        except KeyboardInterrupt:
            status.stop()
            answer.abort()
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
            answer.abort()
            message = _in_cli_words(str(exc), args)
            if args.json:
                sys.stdout.write(json.dumps({"type": "error", "error": type(exc).__name__, "message": message}) + "\n")
            sys.stdout.flush()
            sys.stderr.write(f"qvq: error: {message}\n")
            return 2 if isinstance(exc, InputError) else 1
    return 0
