"""The qvq command in-process, against qvq_sdk.testing.FakeSpace (no network)."""

from __future__ import annotations

import functools
import io
import json
import re
import socket
import time

import pytest
import responses

from qvq_sdk import QVQClient, __version__, cli
from qvq_sdk._events import Done, ProcessingStarted, Progress, QueuePosition, SpaceLog, TextUpdate, WakingUp
from qvq_sdk.testing import FakeSpace


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

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        pass

    def events(self, messages, images=None):
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
    assert error_line(capsys) == "The Space takes one image per request; got 2 (-i #1, -i #2)."


def test_a_sentence_about_a_protocol_the_command_lacks_is_dropped():
    args = cli._parser().parse_args(["hi"])
    message = (
        "The Space takes one image per request; got 2 (images[0], images[1]). Several images go to an "
        'OpenAI-compatible server (protocol="openai"). Use protocol="call" to compare.'
    )
    assert cli._in_cli_words(message, args) == (
        "The Space takes one image per request; got 2 (-i #1, -i #2). Use --protocol call to compare."
    )


def test_a_message_without_api_words_is_left_alone():
    args = cli._parser().parse_args(["hi"])
    message = "The Space is out of GPU quota. Wait 0:01:00, or use an account with more quota."
    assert cli._in_cli_words(message, args) == message
    assert cli._in_cli_words("two\n  lines", args) == "two lines"
