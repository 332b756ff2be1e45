"""The qvq command in-process, against qvq_sdk.testing.FakeSpace, an OpenAI-compatible server
faked with ``responses``, or a stub client (no network)."""

from __future__ import annotations

import base64
import functools
import io
import json
import re
import socket
import time

import pytest
import responses
from image_samples import JPEG, PNG

from qvq_sdk import QVQClient, __version__, cli
from qvq_sdk._events import (
    Done,
    ProcessingStarted,
    Progress,
    QueuePosition,
    ReasoningUpdate,
    SpaceLog,
    TextUpdate,
    WakingUp,
)
from qvq_sdk.testing import FakeSpace


@pytest.fixture(autouse=True)
def no_colour_setting(monkeypatch):
    """A developer's NO_COLOR must not change a result (conftest clears the QVQ_* variables)."""
    monkeypatch.delenv("NO_COLOR", raising=False)


@pytest.fixture
def space(monkeypatch):
    monkeypatch.delenv("QVQ_BASE_URL", raising=False)
    fake = FakeSpace()
    with fake.patch():
        yield fake


def test_streams_the_answer_and_ends_with_a_newline(space, capsys):
    space.answer("Hel", "lo")
    assert cli.main(["hi"]) == 0
    assert capsys.readouterr() == ("Hello\n", "")


def test_a_rewrite_starts_on_a_new_line(space, capsys):
    space.rewrite("Thinking...", "Answer: 42")
    assert cli.main(["hi"]) == 0
    assert capsys.readouterr().out == "Thinking...\nAnswer: 42\n"


def test_json_prints_one_event_per_line(space, capsys):
    space.answer("a", "b")
    assert cli.main(["hi", "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines == [
        {"type": "queue", "rank": 0, "queue_size": 1, "eta": None},
        {"type": "started", "eta": None},
        {"type": "text", "delta": "a", "replaced": False},
        {"type": "text", "delta": "b", "replaced": False},
        {"type": "done", "text": "ab"},
    ]


def test_json_reports_an_error_as_its_last_line(space, capsys):
    space.quota_error(retry_after=60)
    assert cli.main(["hi", "--json"]) == 1
    out, err = capsys.readouterr()
    last = json.loads(out.splitlines()[-1])
    assert last["type"] == "error" and last["error"] == "QuotaExceededError"
    assert "0:01:00" in last["message"]
    assert err.startswith("qvq: error: The Space is out of GPU quota")


def test_system_message_and_stdin_prompt(space, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("question\n"))
    space.answer("ok")
    assert cli.main(["-", "--system", "be brief"]) == 0
    assert space.prompts == ["System: be brief\nUser: question\nAssistant:"]


@pytest.mark.parametrize(
    "args, code",
    [(["hi", "-i", "/no/such.png"], 2), (["hi", "--timeout", "-1"], 2), (["hi", "--space", "not a space"], 2)],
)
def test_bad_input_exits_2_with_one_line(space, capsys, args, code):
    assert cli.main(args) == code
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("qvq: error: ") and err.count("\n") == 1
    assert space.prompts == []


def test_http_error_exits_1(space, capsys):
    space.http_error(503, "Queue is full", times=3, retry_after=0)
    assert cli.main(["hi"]) == 1
    assert "queue is full" in capsys.readouterr().err


def test_ctrl_c_exits_130(space, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_run", interrupted)
    assert cli.main(["hi"]) == 130
    assert capsys.readouterr().err == "qvq: interrupted\n"


def test_version_and_help(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out == f"qvq {__version__}\n"
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    help_text = capsys.readouterr().out
    assert "examples:" in help_text and "--base-url" in help_text and "--json" in help_text


def test_usage_error_exits_2(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["hi", "--protocol", "carrier-pigeon"])
    assert info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_no_status_line_when_stderr_is_not_a_terminal(space, capsys):
    space.answer("x", delay=0.6)
    assert cli.main(["hi"]) == 0
    assert capsys.readouterr().err == ""


# -- what the Space says besides its text -----------------------------------------------------


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self):
        return True


def terminal_stderr(monkeypatch):
    """Makes sys.stderr a terminal, for the rest of the test (called in the test itself:
    pytest puts its own capture back on sys.stderr when the test starts)."""
    monkeypatch.setenv("NO_COLOR", "1")
    stream = Terminal()
    monkeypatch.setattr("sys.stderr", stream)
    return stream


class StubClient:
    """Stands in for QVQClient: its events() yields the canned events of the class."""

    canned = []
    made = []

    def __init__(self, *args, **kwargs):
        self.made.append((args, kwargs))
        self.protocol = kwargs.get("protocol") or "queue"

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        pass

    def events(self, messages, images=None, **options):
        return iter(self.canned)


@pytest.fixture
def stub(monkeypatch):
    monkeypatch.setattr(cli, "QVQClient", StubClient)
    StubClient.made = []
    return StubClient


def test_the_spaces_warnings_go_to_stderr_and_the_answer_alone_to_stdout(space, capsys):
    space.warning("Image was resized to 1024 px").log("error", "Careful\nnow").answer("A ", "cat")
    assert cli.main(["hi"]) == 0
    out, err = capsys.readouterr()
    assert out == "A cat\n"
    assert err == "qvq: warning: Image was resized to 1024 px\nqvq: error: Careful now\n"


def test_info_and_success_only_on_a_terminal_or_with_verbose(space, capsys):
    space.info("Model loaded").log("success", "Saved").warning("Hm", title="Heads up").answer("ok")
    assert cli.main(["hi"]) == 0
    assert capsys.readouterr() == ("ok\n", "qvq: warning: Heads up: Hm\n")
    space.info("Model loaded").log("success", "Saved").log("debug", "from a newer Gradio").answer("ok")
    assert cli.main(["hi", "--verbose"]) == 0
    assert capsys.readouterr() == (
        "ok\n",
        "qvq: info: Model loaded\nqvq: success: Saved\nqvq: debug: from a newer Gradio\n",
    )


def test_info_is_shown_on_a_terminal(monkeypatch, space, capsys):
    tty_stderr = terminal_stderr(monkeypatch)
    space.info("Model loaded").answer("ok")
    assert cli.main(["hi"]) == 0
    assert capsys.readouterr().out == "ok\n"
    assert "qvq: info: Model loaded\n" in tty_stderr.getvalue()


def test_json_has_logs_and_progress_in_order_and_warnings_on_stderr(space, capsys):
    space.warning("Image was resized").progress(0.5, desc="Thinking").progress(index=2, length=6).answer("ok")
    assert cli.main(["hi", "--json"]) == 0
    out, err = capsys.readouterr()
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["type"] for line in lines] == ["queue", "started", "log", "progress", "progress", "text", "done"]
    assert lines[2] == {"type": "log", "level": "warning", "message": "Image was resized", "title": "Warning"}
    assert lines[3] == {
        "type": "progress",
        "progress": 0.5,
        "index": None,
        "length": None,
        "unit": "steps",
        "desc": "Thinking",
    }
    assert lines[4]["index"] == 2 and lines[4]["length"] == 6 and lines[4]["progress"] is None
    assert err == "qvq: warning: Image was resized\n"


def test_json_has_waking_events(stub, capsys):
    stub.canned = [WakingUp("SLEEPING", 0.0), WakingUp("APP_STARTING", 3.5), TextUpdate("ok"), Done("ok")]
    assert cli.main(["hi", "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines[:2] == [
        {"type": "waking", "stage": "SLEEPING", "waited": 0.0},
        {"type": "waking", "stage": "APP_STARTING", "waited": 3.5},
    ]


def status_lines(text):
    """What the status line showed, in order (each redraw starts with a line clear)."""
    return [piece for piece in text.split("\r\x1b[2K") if piece]


def test_progress_shows_in_the_status_line(monkeypatch, stub, capsys):
    tty_stderr = terminal_stderr(monkeypatch)
    stub.canned = [
        QueuePosition(0, 1, None),
        ProcessingStarted(None),
        Progress(0.333, None, None, "steps", "Thinking"),
        Progress(None, 2, 6, "steps", "Thinking"),
        TextUpdate("ok"),
        Progress(0.9, None, None, None, "late"),  # the answer is showing: no status line any more
        Done("ok"),
    ]
    assert cli.main(["hi"]) == 0
    assert capsys.readouterr().out == "ok\n"
    shown = status_lines(tty_stderr.getvalue())
    assert [re.sub(r" · \d+ s$", "", line) for line in shown] == [
        "queue: position 1 of 1",
        "generating",
        "Thinking 33%",
        "Thinking 2/6 steps",
    ]
    assert tty_stderr.getvalue().endswith("\r\x1b[2K")  # cleared before the answer


def test_waking_up_shows_in_the_status_line(monkeypatch, stub, capsys):
    tty_stderr = terminal_stderr(monkeypatch)
    stub.canned = [WakingUp("SLEEPING", 0.0), WakingUp("APP_STARTING", 42.2), TextUpdate("ok"), Done("ok")]
    assert cli.main(["hi"]) == 0
    shown = status_lines(tty_stderr.getvalue())
    assert shown[:2] == ["the Space is waking up (SLEEPING), 0 s", "the Space is waking up (APP_STARTING), 42 s"]


def test_a_warning_clears_the_status_line_and_the_line_comes_back(monkeypatch, stub, capsys):
    tty_stderr = terminal_stderr(monkeypatch)
    stub.canned = [
        ProcessingStarted(None),
        SpaceLog("warning", "Image was resized", "Warning"),
        TextUpdate("ok"),
        Done("ok"),
    ]
    assert cli.main(["hi"]) == 0
    err = tty_stderr.getvalue()
    assert re.search(
        r"generating · \d+ s\r\x1b\[2Kqvq: warning: Image was resized\n\r\x1b\[2Kgenerating · \d+ s", err
    ), err
    assert capsys.readouterr().out == "ok\n"


def test_a_warning_in_the_middle_of_the_answer_on_a_terminal_goes_on_its_own_line(stub, monkeypatch, capsys):
    out = Terminal()
    monkeypatch.setattr("sys.stdout", out)
    stub.canned = [TextUpdate("The "), SpaceLog("warning", "slow", None), TextUpdate("cat"), Done("The cat")]
    assert cli.main(["hi"]) == 0
    assert out.getvalue() == "The \ncat\n"
    assert capsys.readouterr().err == "qvq: warning: slow\n"


def test_a_warning_in_the_middle_of_the_answer_into_a_file_leaves_the_answer_whole(stub, capsys):
    stub.canned = [TextUpdate("The "), SpaceLog("warning", "slow", None), TextUpdate("cat"), Done("The cat")]
    assert cli.main(["hi"]) == 0
    assert capsys.readouterr() == ("The cat\n", "qvq: warning: slow\n")


@pytest.mark.parametrize(
    "progress, expected",
    [
        (Progress(0.333, None, None, "steps", "Thinking"), "Thinking 33%"),
        (Progress(None, 2, 6, "steps", "Thinking"), "Thinking 2/6 steps"),
        (Progress(0.5, 3, 6, "it", "Reading"), "Reading 50% (3/6 it)"),
        (Progress(None, 3, None, "steps", "Thinking"), "Thinking steps 3"),
        (Progress(None, 3, None, None, None), "progress step 3"),
        (Progress(None, 2, 6, None, None), "progress 2/6"),
        (Progress(1.0, None, None, None, None), "progress 100%"),
        (Progress(None, None, None, "steps", "Thinking"), "Thinking"),
    ],
)
def test_progress_descriptions(progress, expected):
    assert cli._describe_progress(progress) == expected


def test_space_and_base_url_together_go_to_the_client(stub, capsys):
    stub.canned = [Done("")]
    assert cli.main(["hi", "--space", "me/copy", "--base-url", "http://127.0.0.1:7860"]) == 0
    ((_, kwargs),) = stub.made
    assert kwargs["space"] == "me/copy" and kwargs["base_url"] == "http://127.0.0.1:7860"


@pytest.fixture
def fast_waking(monkeypatch):
    from qvq_sdk import _waking

    monkeypatch.setattr(_waking, "WAKE_POLL_SECONDS", 0.01)


def test_a_sleeping_fake_space_through_the_command(monkeypatch, space, capsys, fast_waking):
    tty_stderr = terminal_stderr(monkeypatch)
    # The command's client retries a 503 twice (with backoff) before it asks the Hub.
    space.asleep(3, stages="APP_STARTING").warning("Image was resized").answer("awake")
    assert cli.main(["hi", "--space", FakeSpace.space_id]) == 0
    assert capsys.readouterr().out == "awake\n"
    err = tty_stderr.getvalue()
    assert "\r\x1b[2Kthe Space is waking up (APP_STARTING), 0 s\r" in err
    assert "qvq: warning: Image was resized\n" in err
    assert space.runtime_lookups == [FakeSpace.space_id]


# -- errors in the command's words, not the Python API's ---------------------------------------


def error_line(capsys):
    """The one error line the command printed on stderr, without its "qvq: error: "."""
    err = capsys.readouterr().err
    assert err.startswith("qvq: error: ") and err.count("\n") == 1, err
    return err[len("qvq: error: ") : -1]


@pytest.fixture
def client_options(monkeypatch):
    """Sets QVQClient options the command has no flag for (the client it makes gets them)."""

    def set_options(**options):
        monkeypatch.setattr(cli, "QVQClient", functools.partial(QVQClient, **options))

    return set_options


@pytest.mark.parametrize("stdin", ["", "\n", "  \n"])
def test_an_empty_prompt_on_stdin_is_the_empty_prompt(space, capsys, monkeypatch, stdin):
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    assert cli.main(["-"]) == 2
    assert error_line(capsys) == "the prompt is empty."
    assert space.prompts == []


def test_an_empty_prompt_or_system_message_with_system(space, capsys):
    assert cli.main(["", "--system", "be brief"]) == 2
    assert error_line(capsys) == "the prompt is empty."
    assert cli.main(["hi", "--system", " "]) == 2
    assert error_line(capsys) == "--system is empty."


def test_the_call_protocols_hidden_error_names_the_protocol_flag(capsys):
    base = "http://127.0.0.1:7860"
    config = {
        "version": "5.9.1",
        "api_prefix": "/gradio_api",
        "protocol": "sse_v3",
        "dependencies": [{"id": 0, "api_name": "generate", "queue": True, "backend_fn": True}],
    }
    with responses.RequestsMock(assert_all_requests_are_fired=True) as rsps:
        rsps.get(base + "/config", json=config)
        rsps.post(base + "/gradio_api/call/generate", json={"event_id": "e1"})
        # Gradio 5's call protocol: an app error is an error event without its message.
        rsps.get(
            base + "/gradio_api/call/generate/e1",
            body=b"event: error\ndata: null\n\n",
            content_type="text/event-stream",
        )
        assert cli.main(["hi", "--base-url", base, "--protocol", "call"]) == 1
    message = error_line(capsys)
    assert "Use --protocol queue (the default)" in message
    assert "protocol=" not in message


def test_a_read_timeout_names_the_timeout_flag(space, capsys):
    space.answer("late", delay=1.0)
    assert cli.main(["hi", "--timeout", "0.1"]) == 1
    message = error_line(capsys)
    assert message.endswith("raise --timeout.")
    assert "timeout=" not in message


def test_a_json_error_line_has_the_commands_words_too(space, capsys):
    space.answer("late", delay=1.0)
    assert cli.main(["hi", "--timeout", "0.1", "--json"]) == 1
    out, err = capsys.readouterr()
    last = json.loads(out.splitlines()[-1])
    assert last["type"] == "error" and last["message"].endswith("raise --timeout.")
    assert err == f"qvq: error: {last['message']}\n"


def test_a_refused_token_names_the_token_flag(space, capsys):
    space.http_error(401, "Unauthorized")
    assert cli.main(["hi"]) == 1
    message = error_line(capsys)
    assert "pass --token or set HF_TOKEN" in message and "token=" not in message


def test_not_found_names_the_space_and_base_url_flags(space, capsys):
    space.http_error(404, "no such Space")
    assert cli.main(["hi"]) == 1
    message = error_line(capsys)
    assert "Check --space or --base-url" in message and "base_url" not in message
    assert "(then pass --token)" in message


def test_a_deadline_is_named_without_an_option_the_command_lacks(space, capsys, client_options):
    client_options(deadline=0.2)
    space.answer("a", "b", delay=0.5)
    assert cli.main(["hi"]) == 1
    message = error_line(capsys)
    assert "within its deadline of 0.2 s;" in message and message.endswith("Retry.")
    assert "deadline=" not in message


def test_the_wake_timeout_is_named_without_an_option_the_command_lacks(space, capsys, client_options, fast_waking):
    client_options(wake_timeout=0.05, max_retries=0)
    space.paused("SLEEPING")
    assert cli.main(["hi", "--space", FakeSpace.space_id]) == 1
    message = error_line(capsys)
    assert "still waking up (SLEEPING)" in message and "the limit of the wait (0.05 s)" in message
    assert message.endswith("Retry later.")
    assert "wake_timeout" not in message


def test_a_paused_space_names_the_space_and_base_url_flags(space, capsys, client_options, fast_waking):
    client_options(max_retries=0)
    space.paused("PAUSED")
    assert cli.main(["hi", "--space", FakeSpace.space_id]) == 1
    message = error_line(capsys)
    assert "use your copy (--space or --base-url)" in message and "space=" not in message


def test_an_unresolvable_host_points_at_base_url_and_qvq_base_url(capsys, monkeypatch):
    def unresolvable(host, *args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", unresolvable)
    monkeypatch.setattr(time, "sleep", lambda seconds: None)  # the client's retries
    assert cli.main(["hi"]) == 1
    message = error_line(capsys)
    assert "qwen-qvq-72b-preview.hf.space: the host name could not be resolved" in message
    assert "(--base-url URL or QVQ_BASE_URL=URL points qvq at another server)" in message


@pytest.mark.parametrize(
    "args, expected",
    [
        (["hi", "--timeout", "-1"], "--timeout "),
        (["hi", "--space", "not a space"], "--space must be a Space id"),
        (["hi", "--base-url", "ftp://example.com"], "--base-url must be an http(s) URL"),
        (["hi", "--base-url", "http://me:secret@example.com"], "--base-url must not carry"),
    ],
)
def test_a_bad_option_is_named_by_its_flag(capsys, args, expected):
    assert cli.main(args) == 2
    message = error_line(capsys)
    assert message.startswith(expected)
    assert "token=" not in message


def test_a_bad_qvq_base_url_is_named(capsys, monkeypatch):
    monkeypatch.setenv("QVQ_BASE_URL", "example.com:7860")
    assert cli.main(["hi"]) == 2
    assert error_line(capsys).startswith("QVQ_BASE_URL must be an http(s) URL")


def test_images_are_named_by_their_flag(space, capsys, tmp_path):
    assert cli.main(["hi", "-i", str(tmp_path / "no-such.png")]) == 2
    assert error_line(capsys).startswith("-i: no such image file: ")
    cat = tmp_path / "cat.png"
    cat.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    assert cli.main(["hi", "-i", str(cat), "-i", str(cat)]) == 2
    assert error_line(capsys) == (
        "The Space takes one image per request; got 2 (-i #1, -i #2). Several images go to an "
        "OpenAI-compatible server (--protocol openai)."
    )


def test_every_protocol_is_named_by_its_flag():
    args = cli._parser().parse_args(["hi"])
    message = 'Use protocol="queue", protocol="call" or protocol="openai".'
    assert cli._in_cli_words(message, args) == "Use --protocol queue, --protocol call or --protocol openai."


def test_a_message_without_api_words_is_left_alone():
    args = cli._parser().parse_args(["hi"])
    message = "The Space is out of GPU quota. Wait 0:01:00, or use an account with more quota."
    assert cli._in_cli_words(message, args) == message
    assert cli._in_cli_words("two\n  lines", args) == "two lines"


# -- an OpenAI-compatible server (--protocol openai) -------------------------------------------

OPENAI_URL = "http://127.0.0.1:8000/v1"
OPENAI = ["--base-url", OPENAI_URL, "--protocol", "openai"]


def sse(document):
    return b"data: " + json.dumps(document).encode() + b"\n\n"


class OpenAIServer:
    """A scripted OpenAI-compatible server: each reply streams as vLLM frames it (the role, one
    chunk per reasoning and text piece, the last with the finish_reason, a usage chunk, then
    ``[DONE]``). ``bodies`` and ``headers`` record each chat request."""

    def __init__(self, rsps):
        self.rsps = rsps
        self.bodies = []
        self.headers = []

    def _reply(self, stream, status=200):
        def reply(request):
            self.bodies.append(json.loads(request.body))
            self.headers.append(dict(request.headers))
            return status, {}, stream

        content_type = "text/event-stream" if status == 200 else "application/json"
        self.rsps.add_callback(
            responses.POST, OPENAI_URL + "/chat/completions", callback=reply, content_type=content_type
        )

    def answer(self, *chunks, reasoning=(), finish_reason="stop", usage=None):
        def choice(delta, finish=None):
            return sse({"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})

        stream = choice({"role": "assistant", "content": ""})
        stream += b"".join(choice({"reasoning_content": piece}) for piece in reasoning)
        texts = chunks or ("",)
        stream += b"".join(
            choice({"content": text}, finish_reason if i == len(texts) - 1 else None) for i, text in enumerate(texts)
        )
        if usage is not None:
            stream += sse({"choices": [], "usage": usage})
        self._reply(stream + b"data: [DONE]\n\n")

    def error_mid_stream(self, message, reasoning=()):
        stream = b"".join(
            sse({"choices": [{"index": 0, "delta": {"reasoning_content": piece}, "finish_reason": None}]})
            for piece in reasoning
        )
        self._reply(stream + sse({"error": {"message": message}}) + b"data: [DONE]\n\n")

    def http_error(self, status, message):
        self._reply(json.dumps({"error": {"message": message}}), status)


@pytest.fixture
def openai():
    with responses.RequestsMock(assert_all_requests_are_fired=True) as rsps:
        yield OpenAIServer(rsps)


def terminal_stdout(monkeypatch):
    """Makes sys.stdout a terminal, for the rest of the test (called in the test itself, as
    terminal_stderr is)."""
    stream = Terminal()
    monkeypatch.setattr("sys.stdout", stream)
    return stream


def test_the_reasoning_then_a_blank_line_then_the_answer_into_a_file_or_pipe(openai, capsys):
    openai.answer("A ", "cat.", reasoning=["I see ", "fur."])
    assert cli.main(["What is it?", *OPENAI]) == 0
    assert capsys.readouterr() == ("I see fur.\n\nA cat.\n", "")  # no escape codes
    openai.answer("A cat.", reasoning=["Fur.\n"])
    assert cli.main(["What is it?", *OPENAI]) == 0
    assert capsys.readouterr().out == "Fur.\n\nA cat.\n"


def test_the_reasoning_is_dimmed_on_a_terminal_and_reset_before_the_answer(monkeypatch, openai, capsys):
    tty_stdout = terminal_stdout(monkeypatch)
    openai.answer("A ", "cat.", reasoning=["I see ", "fur."])
    assert cli.main(["What is it?", *OPENAI]) == 0
    assert tty_stdout.getvalue() == "\x1b[2mI see fur.\x1b[0m\n\nA cat.\n"


def test_the_reasoning_is_reset_at_the_end_when_no_answer_follows(monkeypatch, openai, capsys):
    tty_stdout = terminal_stdout(monkeypatch)
    openai.answer(reasoning=["Hmm"], finish_reason="length")
    assert cli.main(["What is it?", *OPENAI]) == 0
    assert tty_stdout.getvalue() == "\x1b[2mHmm\x1b[0m\n"


def test_no_color_leaves_the_reasoning_undimmed_on_a_terminal(openai, monkeypatch, capsys):
    tty_stdout = terminal_stdout(monkeypatch)
    monkeypatch.setenv("NO_COLOR", "1")
    openai.answer("A cat.", reasoning=["Fur."])
    assert cli.main(["What is it?", *OPENAI]) == 0
    assert tty_stdout.getvalue() == "Fur.\n\nA cat.\n"


def test_no_reasoning_prints_the_answer_alone(monkeypatch, openai, capsys):
    tty_stdout = terminal_stdout(monkeypatch)
    openai.answer("A ", "cat.", reasoning=["I see ", "fur."])
    assert cli.main(["What is it?", *OPENAI, "--no-reasoning"]) == 0
    assert tty_stdout.getvalue() == "A cat.\n"


def test_no_reasoning_says_on_the_status_line_that_the_model_is_reasoning(openai, monkeypatch, capsys):
    tty_stderr = terminal_stderr(monkeypatch)
    openai.answer("A cat.", reasoning=["I see ", "fur."])
    assert cli.main(["What is it?", *OPENAI, "--no-reasoning"]) == 0
    assert capsys.readouterr().out == "A cat.\n"
    shown = [re.sub(r" · \d+ s$", "", line) for line in status_lines(tty_stderr.getvalue())]
    assert shown[-1] == "reasoning (--no-reasoning: not shown)"
    assert tty_stderr.getvalue().endswith("\r\x1b[2K")


def test_json_tells_reasoning_from_text_and_the_done_line_has_finish_reason_and_usage(openai, capsys):
    usage = {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
    openai.answer("A cat.", reasoning=["I see ", "fur."], usage=usage)
    assert cli.main(["What is it?", *OPENAI, "--json"]) == 0
    out, err = capsys.readouterr()
    assert [json.loads(line) for line in out.splitlines()] == [
        {"type": "reasoning", "delta": "I see "},
        {"type": "reasoning", "delta": "fur."},
        {"type": "text", "delta": "A cat.", "replaced": False},
        {
            "type": "done",
            "text": "A cat.",
            "reasoning": "I see fur.",
            "finish_reason": "stop",
            "usage": {**usage, "reasoning_tokens": None},
        },
    ]
    assert err == ""


def test_json_with_no_reasoning_has_no_reasoning(openai, capsys):
    openai.answer("A cat.", reasoning=["I see ", "fur."])
    assert cli.main(["What is it?", *OPENAI, "--json", "--no-reasoning"]) == 0
    assert [json.loads(line) for line in capsys.readouterr().out.splitlines()] == [
        {"type": "text", "delta": "A cat.", "replaced": False},
        {"type": "done", "text": "A cat.", "finish_reason": "stop", "usage": None},
    ]


def test_model_max_tokens_and_temperature_reach_the_request(openai, capsys):
    openai.answer("ok")
    args = ["hi", *OPENAI, "--model", "qvq-max", "--max-tokens", "512", "--temperature", "0.2"]
    assert cli.main(args) == 0
    (body,) = openai.bodies
    assert body["model"] == "qvq-max"
    assert body["max_tokens"] == 512 and body["temperature"] == 0.2
    assert body["messages"] == [{"role": "user", "content": "hi"}]


def test_without_the_flags_the_request_has_the_default_model_and_the_servers_settings(openai, capsys):
    openai.answer("ok")
    assert cli.main(["hi", *OPENAI, "--system", "be brief"]) == 0
    (body,) = openai.bodies
    assert body["model"] == "Qwen/QVQ-72B-Preview"
    assert "max_tokens" not in body and "temperature" not in body
    assert body["messages"] == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]


def test_several_images_go_to_an_openai_compatible_server(openai, capsys, tmp_path):
    cat, dog = tmp_path / "cat.png", tmp_path / "dog.jpg"
    cat.write_bytes(PNG)
    dog.write_bytes(JPEG)
    openai.answer("Two animals.")
    assert cli.main(["Compare them", *OPENAI, "-i", str(cat), "-i", str(dog)]) == 0
    assert capsys.readouterr().out == "Two animals.\n"
    ((message,),) = [body["messages"] for body in openai.bodies]
    text, first, second = message["content"]
    assert text == {"type": "text", "text": "Compare them"}
    assert [base64.b64decode(part["image_url"]["url"].split(",", 1)[1]) for part in (first, second)] == [
        PNG,
        JPEG,
    ]


def test_qvq_protocol_with_qvq_base_url_is_honoured(openai, monkeypatch, capsys):
    monkeypatch.setenv("QVQ_BASE_URL", OPENAI_URL)
    monkeypatch.setenv("QVQ_PROTOCOL", "openai")
    openai.answer("A cat.", reasoning=["Fur."])
    assert cli.main(["What is it?"]) == 0
    assert capsys.readouterr().out == "Fur.\n\nA cat.\n"


def test_the_protocol_goes_to_the_client_only_when_given(stub, capsys):
    stub.canned = [Done("")]
    assert cli.main(["hi"]) == 0
    assert cli.main(["hi", "--protocol", "call"]) == 0
    (_, without), (_, given) = stub.made
    assert "protocol" not in without  # the library's default: QVQ_PROTOCOL with QVQ_BASE_URL, else queue
    assert given["protocol"] == "call"


def test_the_api_key_from_token_or_qvq_api_key(openai, monkeypatch, capsys):
    openai.answer("ok")
    openai.answer("ok")
    assert cli.main(["hi", *OPENAI, "--token", "sk-given"]) == 0
    monkeypatch.setenv("QVQ_API_KEY", "sk-environment")
    assert cli.main(["hi", *OPENAI]) == 0
    assert [headers["Authorization"] for headers in openai.headers] == ["Bearer sk-given", "Bearer sk-environment"]


@pytest.mark.parametrize(
    "reasoning, text, args, note",
    [
        (
            ["Fur."],
            "A ca",
            ["--max-tokens", "5"],
            'the answer was cut at --max-tokens 5 (finish_reason "length"); raise --max-tokens for the rest',
        ),
        (
            ["Fur."],
            "A ca",
            [],
            'the answer was cut at the server\'s token limit (finish_reason "length"); ask for more with '
            "--max-tokens for the rest",
        ),
        (
            ["Fur and"],
            "",
            ["--max-tokens", "2"],
            "the model was cut at --max-tokens 2 while still reasoning, before any answer "
            '(finish_reason "length"); raise --max-tokens (the reasoning counts)',
        ),
    ],
)
def test_an_answer_cut_at_max_tokens_is_a_warning_on_stderr(openai, capsys, reasoning, text, args, note):
    openai.answer(text, reasoning=reasoning, finish_reason="length")
    assert cli.main(["What is it?", *OPENAI, *args]) == 0
    out, err = capsys.readouterr()
    assert out == f"{reasoning[0]}\n\n{text}\n" if text else f"{reasoning[0]}\n"
    assert err == f"qvq: warning: {note}\n"


def test_json_has_the_cut_in_its_done_line_and_the_warning_on_stderr(openai, capsys):
    openai.answer("A ca", finish_reason="length")
    assert cli.main(["What is it?", *OPENAI, "--json", "--max-tokens", "5"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out.splitlines()[-1])["finish_reason"] == "length"
    assert err.startswith("qvq: warning: the answer was cut at --max-tokens 5")


def test_an_error_in_the_middle_of_the_reasoning_resets_the_terminal_first(monkeypatch, openai, capsys):
    tty_stdout = terminal_stdout(monkeypatch)
    openai.error_mid_stream("out of memory", reasoning=["Let me"])
    assert cli.main(["What is it?", *OPENAI]) == 1
    assert tty_stdout.getvalue() == "\x1b[2mLet me\x1b[0m\n"
    assert capsys.readouterr().err == "qvq: error: The server failed in the middle of the answer: out of memory\n"


def test_ctrl_c_in_the_middle_of_the_reasoning_resets_the_terminal(monkeypatch, stub, capsys):
    tty_stdout = terminal_stdout(monkeypatch)

    def interrupted():
        yield ReasoningUpdate("Let me")
        raise KeyboardInterrupt

    stub.canned = interrupted()
    assert cli.main(["hi", "--protocol", "openai"]) == 130
    assert tty_stdout.getvalue() == "\x1b[2mLet me\x1b[0m\n"
    assert capsys.readouterr().err == "qvq: interrupted\n"


def test_a_line_on_stderr_in_the_middle_of_the_reasoning_is_not_dimmed(monkeypatch, stub, capsys):
    tty_stdout = terminal_stdout(monkeypatch)
    stub.canned = [
        ReasoningUpdate("a"),
        SpaceLog("warning", "slow", None),
        ReasoningUpdate("b"),
        TextUpdate("ok"),
        Done("ok", reasoning="ab"),
    ]
    assert cli.main(["hi"]) == 0
    assert tty_stdout.getvalue() == "\x1b[2ma\x1b[0m\n\x1b[2mb\x1b[0m\n\nok\n"
    assert capsys.readouterr().err == "qvq: warning: slow\n"


@pytest.mark.parametrize(
    "args, expected",
    [
        (
            ["hi", "--protocol", "openai"],
            '--protocol openai needs --base-url (the server\'s API root, e.g. "http://127.0.0.1:8000/v1"), '
            "and takes no --space.",
        ),
        (
            ["hi", "--protocol", "openai", "--space", "me/copy", "--base-url", OPENAI_URL],
            '--protocol openai needs --base-url (the server\'s API root, e.g. "http://127.0.0.1:8000/v1"), '
            "and takes no --space.",
        ),
        (["hi", *OPENAI, "--max-tokens", "0"], "--max-tokens must be a whole number >= 1, not 0."),
        (["hi", *OPENAI, "--temperature", "-1"], "--temperature must be a number >= 0, not -1.0."),
        (["hi", *OPENAI, "--temperature", "nan"], "--temperature must be a number >= 0, not nan."),
        (["hi", *OPENAI, "--model", " "], "--model is empty."),
    ],
)
def test_openai_input_errors_in_the_commands_words(capsys, args, expected):
    assert cli.main(args) == 2
    assert error_line(capsys) == expected


@pytest.mark.parametrize(
    "args, expected",
    [
        (
            ["--max-tokens", "100"],
            "--max-tokens: the Space takes no generation options (the Space sets its own); they apply with "
            "--protocol openai.",
        ),
        (
            ["--max-tokens", "100", "--temperature", "0"],
            "--max-tokens, --temperature: the Space takes no generation options (the Space sets its own); they "
            "apply with --protocol openai.",
        ),
        (
            ["--temperature", "0.5"],
            "--temperature: the Space takes no generation options (the Space sets its own); they apply with "
            "--protocol openai.",
        ),
        (["--model", "gpt-4o"], "--model must be one of qwen-qvq-72b-preview, qvq-72b, not 'gpt-4o'."),
    ],
)
def test_generation_flags_with_the_space_are_named_by_their_flags(space, capsys, args, expected):
    assert cli.main(["hi", *args]) == 2
    assert error_line(capsys) == expected
    assert space.prompts == []


def test_a_bad_qvq_protocol_is_named(capsys, monkeypatch):
    monkeypatch.setenv("QVQ_BASE_URL", OPENAI_URL)
    monkeypatch.setenv("QVQ_PROTOCOL", "grpc")
    assert cli.main(["hi"]) == 2
    assert error_line(capsys) == "QVQ_PROTOCOL must be 'queue', 'call' or 'openai', not 'grpc'."


def test_openai_status_errors_name_the_flags(openai, capsys):
    openai.http_error(404, "The model `qvq` does not exist.")
    assert cli.main(["hi", *OPENAI, "--model", "qvq"]) == 1
    message = error_line(capsys)
    assert message.endswith("Check --base-url (for most servers it ends in /v1) and the model name (--model).")
    openai.http_error(401, "Invalid API key")
    assert cli.main(["hi", *OPENAI, "--token", "sk-wrong"]) == 1
    assert error_line(capsys).endswith("Check the API key (--token or QVQ_API_KEY).")
    openai.http_error(401, "No API key")
    assert cli.main(["hi", *OPENAI]) == 1
    assert error_line(capsys).endswith("The server wants an API key: pass --token or set QVQ_API_KEY.")


def test_a_base_url_from_the_environment_is_named_as_such(openai, monkeypatch, capsys):
    monkeypatch.setenv("QVQ_BASE_URL", OPENAI_URL)
    monkeypatch.setenv("QVQ_PROTOCOL", "openai")
    openai.http_error(404, "Not Found")
    assert cli.main(["hi"]) == 1
    assert "Check QVQ_BASE_URL (for most servers it ends in /v1)" in error_line(capsys)


def test_help_describes_the_openai_flags(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    for flag in ("--protocol {queue,call,openai}", "--model M", "--max-tokens N", "--temperature T", "--no-reasoning"):
        assert flag in help_text
    assert "QVQ_PROTOCOL" in help_text and "QVQ_API_KEY" in help_text
