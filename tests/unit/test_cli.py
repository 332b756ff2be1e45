"""The qvq command in-process, against qvq_sdk.testing.FakeSpace (no network)."""

from __future__ import annotations

import io
import json

import pytest

from qvq_sdk import __version__, cli
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
        cli.main(["hi", "--space", "a/b", "--base-url", "http://127.0.0.1:1"])
    assert info.value.code == 2
    assert "not allowed with" in capsys.readouterr().err


def test_no_status_line_when_stderr_is_not_a_terminal(space, capsys):
    space.answer("x", delay=0.6)
    assert cli.main(["hi"]) == 0
    assert capsys.readouterr().err == ""
