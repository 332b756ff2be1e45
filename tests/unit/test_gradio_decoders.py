"""qvq_sdk._gradio_decoders: the queue and call protocols' event data → typed events and errors."""

import json
import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qvq_sdk._events import Done, ProcessingStarted, Progress, QueuePosition, SpaceLog, TextUpdate
from qvq_sdk._gradio_decoders import CallDecoder, QueueDecoder, _parse_json, clean_app_message, parse_retry_in
from qvq_sdk._text import excerpt
from qvq_sdk.errors import AppError, QuotaExceededError, StreamError

EVENT_ID = "75d8a6f0c1e24b0e9d3b5a7c1f2e4d6a"
OTHER_ID = "0123456789abcdef0123456789abcdef"


# -- message builders (the shapes PROTOCOL.md recorded) ------------------------------------


def message(kind, event_id=EVENT_ID, **fields):
    body = {"msg": kind, "event_id": event_id}
    body.update(fields)
    return json.dumps(body)


def estimation(rank=0, queue_size=1, rank_eta=0.31):
    return message("estimation", rank=rank, queue_size=queue_size, rank_eta=rank_eta)


def starts(eta=0.31):
    return message("process_starts", eta=eta)


def generating(value, event_id=EVENT_ID):
    return message(
        "process_generating",
        event_id=event_id,
        output={"data": [value], "is_generating": True, "duration": 0.01},
        success=True,
    )


def append(text):
    return generating([["append", [], text]])


def replace(text):
    return generating([["replace", [], text]])


def completed(value, event_id=EVENT_ID):
    return message(
        "process_completed",
        event_id=event_id,
        output={"data": [value], "is_generating": False, "duration": 0.2},
        success=True,
    )


def failed(error):
    return message(
        "process_completed",
        output={"error": error, "title": "Error", "visible": True, "duration": 10},
        success=False,
    )


CLOSE = message("close_stream", event_id=None)
HEARTBEAT = message("heartbeat", event_id=None)


def feed_all(decoder, datas):
    events = []
    for data in datas:
        events.extend(decoder.feed("", data))
    return events


def texts(events):
    return [event for event in events if isinstance(event, TextUpdate)]


# -- the queue protocol: a normal answer ------------------------------------------------------


def test_queue_real_sequence():
    decoder = QueueDecoder(EVENT_ID)
    events = feed_all(
        decoder,
        [
            estimation(rank=2, queue_size=3, rank_eta=4.5),
            estimation(rank=0, queue_size=1, rank_eta=0.31),
            starts(eta=1.5),
            generating("You"),
            append(" said:"),
            generating([]),
            HEARTBEAT,
            append(" hi"),
            completed("You said: hi"),
        ],
    )
    assert events == [
        QueuePosition(rank=2, queue_size=3, eta=4.5),
        QueuePosition(rank=0, queue_size=1, eta=0.31),
        ProcessingStarted(eta=1.5),
        TextUpdate("You"),
        TextUpdate(" said:", buffer=_buffer_of("You", " said:")),
        TextUpdate(" hi", buffer=_buffer_of("You", " said:", " hi")),
        Done("You said: hi"),
    ]
    assert decoder.done
    # close_stream after completion changes nothing, and the end is not an error.
    assert decoder.feed("", CLOSE) == []
    decoder.end_of_stream()


def _buffer_of(*pieces):
    from qvq_sdk._events import TextBuffer

    buffer = TextBuffer()
    for piece in pieces:
        buffer.append(piece)
    return buffer


def test_queue_text_is_whole_text_so_far_and_deltas_join_to_final():
    pieces = ["The", " picture", " shows", "", " a cat", " 🙂", "."]
    decoder = QueueDecoder(EVENT_ID)
    datas = [generating(pieces[0])] + [append(piece) for piece in pieces[1:]]
    updates = []
    for data in datas:
        for event in decoder.feed("", data):
            updates.append((event, event.text))  # read text at the time of the event
    final = "".join(pieces)
    done = decoder.feed("", completed(final))
    assert done == [Done(final)]
    assert "".join(update.delta for update, _ in updates) == final
    expected_so_far = []
    so_far = ""
    for piece in pieces:
        if piece:
            so_far += piece
            expected_so_far.append(so_far)
    assert [text for _, text in updates] == expected_so_far
    # ...and still right when read later, in any order.
    assert [update.text for update, _ in reversed(updates)] == expected_so_far[::-1]
    assert not any(update.replaced for update, _ in updates)


def test_queue_several_edits_in_one_diff():
    decoder = QueueDecoder(EVENT_ID)
    decoder.feed("", generating("a"))
    events = decoder.feed("", generating([["append", [], "b"], ["append", [], "c"]]))
    assert [(e.delta, e.text) for e in events] == [("b", "ab"), ("c", "abc")]


def test_queue_completion_carrying_new_text():
    decoder = QueueDecoder(EVENT_ID)
    events = feed_all(decoder, [generating("You said"), completed("You said: hi")])
    assert [(e.delta, e.replaced) for e in texts(events)] == [("You said", False), (": hi", False)]
    assert events[-1] == Done("You said: hi")


def test_queue_rewrite_by_replace_diff():
    decoder = QueueDecoder(EVENT_ID)
    events = feed_all(decoder, [generating("Thinking..."), replace("Answer: 42"), completed("Answer: 42")])
    updates = texts(events)
    assert [(u.delta, u.replaced, u.text) for u in updates] == [
        ("Thinking...", False, "Thinking..."),
        ("Answer: 42", True, "Answer: 42"),
    ]
    assert events[-1] == Done("Answer: 42")


def test_queue_replace_that_extends_is_a_plain_delta():
    decoder = QueueDecoder(EVENT_ID)
    events = feed_all(decoder, [generating("Think"), replace("Thinking")])
    assert [(u.delta, u.replaced, u.text) for u in events] == [
        ("Think", False, "Think"),
        ("ing", False, "Thinking"),
    ]


def test_queue_rewrite_at_completion():
    decoder = QueueDecoder(EVENT_ID)
    events = feed_all(decoder, [generating("draft"), append(" more"), completed("final")])
    assert events[-2:] == [TextUpdate("final", replaced=True), Done("final")]
    assert events[-2].text == "final"


def test_queue_rewrite_then_append():
    decoder = QueueDecoder(EVENT_ID)
    events = feed_all(decoder, [generating("abc"), replace("xy"), append("z"), completed("xyz")])
    assert [(u.delta, u.replaced, u.text) for u in texts(events)] == [
        ("abc", False, "abc"),
        ("xy", True, "xy"),
        ("z", False, "xyz"),
    ]
    assert events[-1] == Done("xyz")
    # The earlier update still shows the text as it was then.
    assert texts(events)[0].text == "abc"


@pytest.mark.parametrize(
    "datas",
    [
        pytest.param([completed(None)], id="completed-null"),
        pytest.param([completed("")], id="completed-empty"),
        pytest.param([generating(None), completed(None)], id="generating-null"),
        pytest.param([generating(""), generating([]), completed("")], id="generating-empty"),
    ],
)
def test_queue_no_output_gives_no_text_and_empty_done(datas):
    decoder = QueueDecoder(EVENT_ID)
    assert feed_all(decoder, datas) == [Done("")]


def test_queue_empty_append_gives_no_update():
    decoder = QueueDecoder(EVENT_ID)
    decoder.feed("", generating("a"))
    assert decoder.feed("", append("")) == []


def test_queue_messages_of_another_event_are_ignored():
    decoder = QueueDecoder(EVENT_ID)
    events = feed_all(
        decoder,
        [
            generating("mine"),
            generating("theirs", event_id=OTHER_ID),
            completed("theirs", event_id=OTHER_ID),
            message("process_completed", event_id=OTHER_ID, output={"error": "boom"}, success=False),
        ],
    )
    assert events == [TextUpdate("mine")]
    assert not decoder.done
    assert decoder.feed("", completed("mine")) == [Done("mine")]


@pytest.mark.parametrize(
    "kind",
    ["heartbeat", "progress", "log", "process_streaming", "send_data", "something_new"],
)
def test_queue_unknown_or_uninteresting_messages_are_ignored(kind):
    decoder = QueueDecoder(EVENT_ID)
    assert decoder.feed("", message(kind, extra={"anything": [1, 2]})) == []  # a log or progress without its fields too
    assert not decoder.done


def sdk_debug_lines(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "qvq_sdk" and r.levelno == logging.DEBUG]


def test_queue_unknown_kinds_are_logged_at_debug_once_per_kind(caplog):
    caplog.set_level(logging.DEBUG, logger="qvq_sdk")
    decoder = QueueDecoder(EVENT_ID)
    for kind in ["something_new", "process_streaming", "something_new", "something_new"]:
        assert decoder.feed("", message(kind, extra=1)) == []
    lines = sdk_debug_lines(caplog)
    assert len(lines) == 2
    assert "'something_new'" in lines[0] and "does not know" in lines[0]
    assert "'process_streaming'" in lines[1]
    assert all(record.levelno == logging.DEBUG for record in caplog.records if record.name == "qvq_sdk")
    # Another stream logs them again.
    QueueDecoder(EVENT_ID).feed("", message("something_new"))
    assert len(sdk_debug_lines(caplog)) == 3


def test_queue_known_messages_are_not_logged(caplog):
    caplog.set_level(logging.DEBUG, logger="qvq_sdk")
    feed_all(
        QueueDecoder(EVENT_ID),
        [estimation(), starts(), HEARTBEAT, log_message("hi"), progress_message(0.5), generating("a"), completed("a")],
    )
    decoder = QueueDecoder(EVENT_ID)
    feed_all(decoder, [message("server_stopped", event_id=None), CLOSE])
    assert sdk_debug_lines(caplog) == []


# -- the queue protocol: the app's log messages and progress ----------------------------------


def log_message(text, level="warning", title="Warning", event_id=EVENT_ID):
    return message("log", event_id=event_id, log=text, level=level, duration=10.0, visible=True, title=title)


def progress_message(progress=None, index=None, length=None, unit="steps", desc="Thinking", more=()):
    unit_data = {"index": index, "length": length, "unit": unit, "progress": progress, "desc": desc}
    return message("progress", progress_data=[unit_data, *more])


def test_queue_logs_and_progress_in_stream_order():
    # The sequence PROTOCOL.md recorded from gr.Warning, gr.Info and gr.Progress.
    events = feed_all(
        QueueDecoder(EVENT_ID),
        [
            estimation(),
            starts(),
            log_message("Image was resized to 1024 px"),
            log_message("Model loaded", level="info", title="Info"),
            progress_message(0.333),
            generating("Answer"),
            progress_message(None, index=2, length=6),
            log_message("Almost done", level="success", title="Success"),
            append(": 42"),
            log_message("Careful", level="error", title=None),
            completed("Answer: 42"),
        ],
    )
    assert [event for event in events if not isinstance(event, (QueuePosition, ProcessingStarted))] == [
        SpaceLog(level="warning", message="Image was resized to 1024 px", title="Warning"),
        SpaceLog(level="info", message="Model loaded", title="Info"),
        Progress(progress=0.333, index=None, length=None, unit="steps", desc="Thinking"),
        TextUpdate("Answer"),
        Progress(progress=None, index=2, length=6, unit="steps", desc="Thinking"),
        SpaceLog(level="success", message="Almost done", title="Success"),
        TextUpdate(": 42", buffer=_buffer_of("Answer", ": 42")),
        SpaceLog(level="error", message="Careful", title=None),
        Done("Answer: 42"),
    ]


def test_queue_logs_do_not_change_the_text():
    decoder = QueueDecoder(EVENT_ID)
    feed_all(decoder, [generating("a"), log_message("w"), progress_message(0.5)])
    assert feed_all(decoder, [append("b"), completed("ab")])[-1] == Done("ab")


@pytest.mark.parametrize(
    "fields, expected",
    [
        ({"log": "x"}, SpaceLog("info", "x", None)),  # Gradio 4: no level, no title
        ({"log": "x", "level": "WARNING", "title": "Hm"}, SpaceLog("warning", "x", "Hm")),
        ({"log": "x", "level": "debug"}, SpaceLog("debug", "x", None)),  # a level of a newer Gradio
        ({"log": "x", "level": 3, "title": 4}, SpaceLog("info", "x", None)),
        ({"log": "", "level": "warning"}, SpaceLog("warning", "", None)),
        ({"log": None, "level": "warning"}, None),
        ({"log": ["x"], "level": "warning"}, None),
        ({"level": "warning"}, None),
    ],
)
def test_queue_log_fields(fields, expected):
    events = QueueDecoder(EVENT_ID).feed("", message("log", **fields))
    assert events == ([] if expected is None else [expected])


@pytest.mark.parametrize(
    "data, expected",
    [
        (
            [{"progress": 1, "index": None, "length": None, "unit": "it", "desc": None}],
            Progress(1.0, None, None, "it", None),
        ),
        ([{"index": 3}], Progress(None, 3, None, None, None)),
        (
            [{"progress": "half", "index": 1.5, "length": True, "unit": 7, "desc": ["x"]}],
            Progress(None, None, None, None, None),
        ),
        ([{"progress": float("nan")}], Progress(None, None, None, None, None)),
        (
            [{"progress": 0.1, "desc": "outer"}, {"progress": 0.9, "desc": "inner"}],
            Progress(0.1, None, None, None, "outer"),
        ),
        ([], None),
        (None, None),
        (["not a dict"], None),
        ({"progress": 0.5}, None),
    ],
)
def test_queue_progress_fields(data, expected):
    events = QueueDecoder(EVENT_ID).feed("", message("progress", progress_data=data))
    assert events == ([] if expected is None else [expected])


def test_queue_logs_of_another_event_or_after_completion_are_ignored():
    decoder = QueueDecoder(EVENT_ID)
    assert decoder.feed("", log_message("theirs", event_id=OTHER_ID)) == []
    feed_all(decoder, [completed("done")])
    assert decoder.feed("", log_message("late")) == []
    assert decoder.feed("", progress_message(1.0)) == []


def test_queue_messages_after_completion_are_ignored():
    decoder = QueueDecoder(EVENT_ID)
    feed_all(decoder, [completed("done")])
    assert decoder.feed("", generating("more")) == []
    assert decoder.feed("", failed("late error")) == []


def test_queue_estimation_with_missing_or_odd_fields():
    decoder = QueueDecoder(EVENT_ID)
    events = decoder.feed("", message("estimation", rank=None, queue_size=True, rank_eta="soon"))
    assert events == [QueuePosition(rank=None, queue_size=None, eta=None)]
    assert decoder.feed("", message("process_starts")) == [ProcessingStarted(eta=None)]


# -- the queue protocol: errors ---------------------------------------------------------------

QUOTA_RETRY = "You have exceeded your GPU quota (60s left vs. 120s requested). Please retry in 0:03:12"
QUOTA_HTML = (
    "You have exceeded your GPU quota (60s requested vs. 56s left). "
    '<a href="https://huggingface.co/join" target="_blank">Create a free account</a> '
    "to get more daily usage quota."
)


def test_queue_app_error_keeps_its_message():
    decoder = QueueDecoder(EVENT_ID)
    with pytest.raises(AppError) as info:
        decoder.feed("", failed("The image is too small."))
    assert type(info.value) is AppError
    assert info.value.message == "The image is too small."
    assert "The image is too small." in str(info.value)


def test_queue_app_error_without_html_decoration():
    decoder = QueueDecoder(EVENT_ID)
    with pytest.raises(AppError) as info:
        decoder.feed("", failed('Model overloaded. <a href="https://example.com/status">Status</a> page.'))
    assert info.value.message == "Model overloaded."
    assert "<a" not in str(info.value)
    assert "href" not in str(info.value)


@pytest.mark.parametrize(
    "output",
    [
        pytest.param({"error": None, "title": "Error"}, id="error-null"),
        pytest.param({"error": "   "}, id="error-blank"),
        pytest.param({}, id="no-error-key"),
        pytest.param(None, id="no-output"),
    ],
)
def test_queue_hidden_app_error(output):
    decoder = QueueDecoder(EVENT_ID)
    with pytest.raises(AppError) as info:
        decoder.feed("", message("process_completed", output=output, success=False))
    assert type(info.value) is AppError
    assert info.value.message is None
    assert "hide" in str(info.value).lower()


@pytest.mark.parametrize(
    "error, message, retry_after",
    [
        pytest.param(QUOTA_RETRY, QUOTA_RETRY, 192.0, id="retry-in-h-mm-ss"),
        pytest.param(
            "You have exceeded your GPU quota (60s left vs. 120s requested). Please retry in 1:02:03",
            "You have exceeded your GPU quota (60s left vs. 120s requested). Please retry in 1:02:03",
            3723.0,
            id="retry-in-hours",
        ),
        pytest.param(
            "You have exceeded your GPU quota. Please retry in 9:48",
            "You have exceeded your GPU quota. Please retry in 9:48",
            588.0,
            id="retry-in-m-ss",
        ),
        pytest.param(
            QUOTA_HTML, "You have exceeded your GPU quota (60s requested vs. 56s left).", None, id="no-retry-html"
        ),
        pytest.param(
            "The requested GPU duration (300s) is larger than the maximum allowed",
            "The requested GPU duration (300s) is larger than the maximum allowed",
            None,
            id="duration-too-large",
        ),
    ],
)
def test_queue_quota_errors(error, message, retry_after):
    decoder = QueueDecoder(EVENT_ID)
    with pytest.raises(QuotaExceededError) as info:
        decoder.feed("", failed(error))
    assert info.value.message == message
    assert info.value.retry_after == retry_after
    assert "<a" not in str(info.value)
    assert message in str(info.value)


def test_queue_quota_error_is_an_app_error():
    with pytest.raises(AppError):
        QueueDecoder(EVENT_ID).feed("", failed(QUOTA_RETRY))


def test_queue_session_not_found():
    decoder = QueueDecoder(EVENT_ID)
    data = message(
        "unexpected_error", event_id=None, message="404: Session not found.", session_not_found=True, success=False
    )
    with pytest.raises(StreamError) as info:
        decoder.feed("", data)
    assert "session" in str(info.value).lower()


def test_queue_session_not_found_said_only_in_the_message():
    decoder = QueueDecoder(EVENT_ID)
    with pytest.raises(StreamError) as info:
        decoder.feed("", message("unexpected_error", event_id=None, message="404: Session not found.", success=False))
    assert "session" in str(info.value).lower()


def test_queue_completion_without_data_is_not_an_empty_answer():
    # A cancelled job completes with an output that has no "data": not a "" answer.
    decoder = QueueDecoder(EVENT_ID)
    decoder.feed("", generating("partial"))
    with pytest.raises(StreamError):
        decoder.feed("", message("process_completed", output={"is_generating": False}, success=True))
    assert not decoder.done


def test_queue_other_unexpected_error():
    decoder = QueueDecoder(EVENT_ID)
    with pytest.raises(StreamError) as info:
        decoder.feed("", message("unexpected_error", message="Worker died", success=False))
    assert "Worker died" in str(info.value)


@pytest.mark.parametrize(
    "datas, received, why",
    [
        pytest.param([generating("Hello"), CLOSE], 5, "closed", id="close-stream"),
        pytest.param([generating("Hello"), append(", world")], 12, "ended", id="end-of-stream"),
        pytest.param([], 0, "ended", id="nothing-at-all"),
        pytest.param([generating("Hi"), message("server_stopped", event_id=None)], 2, "stopped", id="server-stopped"),
    ],
)
def test_queue_stream_ending_before_completion(datas, received, why):
    decoder = QueueDecoder(EVENT_ID)
    feed_all(decoder, datas)
    assert not decoder.done
    with pytest.raises(StreamError) as info:
        decoder.end_of_stream()
    assert "%d characters" % received in str(info.value)
    assert why in str(info.value)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param("not json", id="invalid-json"),
        pytest.param('{"msg": ', id="truncated-json"),
        pytest.param("null", id="null"),
        pytest.param("[1, 2]", id="list"),
        pytest.param('"estimation"', id="string"),
        pytest.param(json.dumps({"event_id": EVENT_ID}), id="missing-msg"),
        pytest.param(json.dumps({"msg": 3, "event_id": EVENT_ID}), id="msg-not-str"),
        pytest.param(message("process_generating", output={"is_generating": True}), id="no-output-data"),
        pytest.param(message("process_generating", output={"data": []}), id="empty-output-data"),
        pytest.param(message("process_generating", output="text"), id="output-not-object"),
        pytest.param(message("process_completed", output={"data": None}, success=True), id="completed-no-data"),
    ],
)
def test_queue_malformed_messages(data):
    with pytest.raises(StreamError):
        QueueDecoder(EVENT_ID).feed("", data)


@pytest.mark.parametrize(
    "diff",
    [
        pytest.param([["add", [], "x"]], id="op-add"),
        pytest.param([["delete", [], None]], id="op-delete"),
        pytest.param([["frobnicate", [], "x"]], id="op-unknown"),
        pytest.param([["append", [0], "x"]], id="path-inside-value"),
        pytest.param([["append", "", "x"]], id="path-not-a-list"),
        pytest.param([["append", []]], id="two-items"),
        pytest.param([["append", [], "x", "y"]], id="four-items"),
        pytest.param(["append"], id="edit-not-a-list"),
        pytest.param([{"op": "append"}], id="edit-an-object"),
        pytest.param([["append", [], 5]], id="append-a-number"),
        pytest.param([["append", [], None]], id="append-null"),
        pytest.param([["replace", [], 5]], id="replace-with-number"),
        pytest.param([["replace", [], {"a": 1}]], id="replace-with-object"),
    ],
)
def test_queue_bad_diffs(diff):
    decoder = QueueDecoder(EVENT_ID)
    decoder.feed("", generating("start"))
    with pytest.raises(StreamError):
        decoder.feed("", generating(diff))


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(42, id="number"),
        pytest.param(True, id="bool"),
        pytest.param({"path": "/tmp/x.png"}, id="file"),
        pytest.param([["user", "hi"]], id="chatbot-pairs"),
    ],
)
@pytest.mark.parametrize("first", ["generating", "completed"])
def test_queue_non_text_outputs(value, first):
    data = generating(value) if first == "generating" else completed(value)
    with pytest.raises(StreamError):
        QueueDecoder(EVENT_ID).feed("", data)


def test_queue_decoder_without_event_id_takes_every_message():
    decoder = QueueDecoder()
    assert feed_all(decoder, [generating("a", event_id=OTHER_ID), completed("ab", event_id=EVENT_ID)]) == [
        TextUpdate("a"),
        TextUpdate("b", buffer=_buffer_of("a", "b")),
        Done("ab"),
    ]


# -- the call protocol ------------------------------------------------------------------------


def call_feed_all(decoder, events):
    out = []
    for name, value in events:
        out.extend(decoder.feed(name, value if isinstance(value, str) else json.dumps(value)))
    return out


def test_call_generating_whole_text_becomes_deltas():
    decoder = CallDecoder()
    events = call_feed_all(
        decoder,
        [
            ("heartbeat", "null"),
            ("generating", ["You"]),
            ("heartbeat", "null"),
            ("generating", ["You said:"]),
            ("generating", ["You said:"]),
            ("generating", ["You said: hi 🙂"]),
            ("complete", ["You said: hi 🙂 | image: 139 bytes test.png"]),
        ],
    )
    updates = texts(events)
    assert [(u.delta, u.replaced, u.text) for u in updates] == [
        ("You", False, "You"),
        (" said:", False, "You said:"),
        (" hi 🙂", False, "You said: hi 🙂"),
        (" | image: 139 bytes test.png", False, "You said: hi 🙂 | image: 139 bytes test.png"),
    ]
    assert events[-1] == Done("You said: hi 🙂 | image: 139 bytes test.png")
    assert "".join(u.delta for u in updates) == events[-1].text
    assert decoder.done
    decoder.end_of_stream()


def test_call_not_append_only_is_replaced():
    decoder = CallDecoder()
    events = call_feed_all(
        decoder, [("generating", ["Thinking..."]), ("generating", ["Answer: 42"]), ("complete", ["Answer: 42"])]
    )
    assert [(u.delta, u.replaced, u.text) for u in texts(events)] == [
        ("Thinking...", False, "Thinking..."),
        ("Answer: 42", True, "Answer: 42"),
    ]
    assert events[-1] == Done("Answer: 42")


def test_call_complete_only():
    assert call_feed_all(CallDecoder(), [("complete", ["All at once"])]) == [
        TextUpdate("All at once"),
        Done("All at once"),
    ]


@pytest.mark.parametrize(
    "events",
    [
        pytest.param([("complete", [None])], id="empty-generator"),
        pytest.param([("generating", [None]), ("complete", [None])], id="yield-none"),
        pytest.param([("generating", [""]), ("complete", [""])], id="empty-strings"),
    ],
)
def test_call_no_output(events):
    assert call_feed_all(CallDecoder(), events) == [Done("")]


def test_call_extra_outputs_are_ignored():
    assert call_feed_all(CallDecoder(), [("complete", ["text", {"other": 1}])]) == [TextUpdate("text"), Done("text")]


def test_call_events_after_completion_are_ignored():
    decoder = CallDecoder()
    call_feed_all(decoder, [("complete", ["x"])])
    assert decoder.feed("generating", '["xy"]') == []
    assert decoder.feed("error", "null") == []


def test_call_error_null_says_to_use_the_queue_protocol():
    with pytest.raises(AppError) as info:
        CallDecoder().feed("error", "null")
    assert type(info.value) is AppError
    assert info.value.message is None
    assert 'protocol="queue"' in str(info.value)


def test_call_error_object_with_message():
    data = json.dumps({"error": "The image is too small.", "duration": 10, "visible": True, "title": "Error"})
    with pytest.raises(AppError) as info:
        CallDecoder().feed("error", data)
    assert type(info.value) is AppError
    assert info.value.message == "The image is too small."


def test_call_error_object_with_null_message():
    with pytest.raises(AppError) as info:
        CallDecoder().feed("error", json.dumps({"error": None, "duration": 10, "visible": True, "title": "Error"}))
    assert info.value.message is None


def test_call_quota_error():
    with pytest.raises(QuotaExceededError) as info:
        CallDecoder().feed("error", json.dumps({"error": QUOTA_RETRY}))
    assert info.value.retry_after == 192.0


@pytest.mark.parametrize("value", ["404: Session not found.", "404: Not Found"])
def test_call_unknown_event_id(value):
    with pytest.raises(StreamError) as info:
        CallDecoder().feed("error", json.dumps(value))
    assert not isinstance(info.value, AppError)
    assert "404" in str(info.value)


def test_call_stream_ending_before_completion():
    decoder = CallDecoder()
    call_feed_all(decoder, [("generating", ["Hello"])])
    with pytest.raises(StreamError) as info:
        decoder.end_of_stream()
    assert "5 characters" in str(info.value)


@pytest.mark.parametrize(
    "name, data",
    [
        pytest.param("generating", "not json", id="invalid-json"),
        pytest.param("generating", "null", id="null"),
        pytest.param("generating", "[]", id="empty-list"),
        pytest.param("generating", '{"data": ["x"]}', id="object"),
        pytest.param("complete", '"text"', id="string"),
        pytest.param("generating", "[42]", id="number-output"),
        pytest.param("complete", '[{"path": "x.png"}]', id="file-output"),
        pytest.param("error", "not json", id="error-invalid-json"),
    ],
)
def test_call_malformed_events(name, data):
    with pytest.raises(StreamError):
        CallDecoder().feed(name, data)


@pytest.mark.parametrize("name", ["heartbeat", "message", "log", ""])
def test_call_other_events_are_ignored_even_if_not_json(name):
    decoder = CallDecoder()
    assert decoder.feed(name, "null") == []
    assert decoder.feed(name, "not json at all") == []
    assert not decoder.done


# -- helpers ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, seconds",
    [
        ("Please retry in 0:03:12", 192.0),
        ("please RETRY IN 2:00:00.", 7200.0),
        ("retry in 5:07", 307.0),
        ("retry in 0:00", 0.0),
        ("(60s requested vs. 56s left)", None),
        ("retry later", None),
        ("", None),
    ],
)
def test_parse_retry_in(text, seconds):
    assert parse_retry_in(text) == seconds


@pytest.mark.parametrize(
    "text, cleaned",
    [
        ("Plain message.", "Plain message."),
        ("Quota. <a href='x'>Join</a> now", "Quota."),
        ("  padded  ", "padded"),
        ("no<a>space-before", "no<a>space-before"),
    ],
)
def test_clean_app_message(text, cleaned):
    assert clean_app_message(text) == cleaned


def test_excerpt_is_short_and_single_line():
    assert excerpt("a\n  b\tc") == "a b c"
    long = excerpt("x" * 500)
    assert len(long) == 120
    assert long.endswith("…")
    assert excerpt("y" * 120) == "y" * 120


# -- properties -------------------------------------------------------------------------------

piece = st.text(max_size=6)
edit = st.one_of(
    st.tuples(st.just("append"), piece),
    st.tuples(st.just("replace"), piece),
)


@settings(max_examples=300, deadline=None)
@given(first=st.one_of(st.none(), piece), diffs=st.lists(st.lists(edit, max_size=3), max_size=8))
def test_queue_diffs_reconstruct_the_text(first, diffs):
    """Whatever the diffs, each update's text is the output so far, applying the
    updates (delta, or whole text when replaced) rebuilds it, and Done has it exactly."""
    decoder = QueueDecoder(EVENT_ID)
    expected = first or ""
    seen = []  # (update, the output after the diff that produced it)
    rebuilt = ""

    def take(events, truth):
        nonlocal rebuilt
        for update in events:
            assert isinstance(update, TextUpdate)
            rebuilt = update.delta if update.replaced else rebuilt + update.delta
            assert update.text == rebuilt
            seen.append((update, rebuilt))
        assert rebuilt == truth

    take(decoder.feed("", generating(first)), expected)
    for diff in diffs:
        for op, value in diff:
            expected = expected + value if op == "append" else value
        take(decoder.feed("", generating([[op, [], value] for op, value in diff])), expected)
    events = decoder.feed("", completed(expected))
    assert events == [Done(expected)]
    assert all(update.text == text for update, text in seen)  # still right, read late


@settings(max_examples=300, deadline=None)
@given(outputs=st.lists(st.one_of(st.none(), st.text(max_size=8)), max_size=10))
def test_call_whole_outputs_reconstruct_the_text(outputs):
    decoder = CallDecoder()
    rebuilt = ""
    for output in outputs:
        for update in decoder.feed("generating", json.dumps([output])):
            rebuilt = update.delta if update.replaced else rebuilt + update.delta
            assert update.text == rebuilt
            assert update.delta or update.replaced
        assert rebuilt == (output or "")
    final = outputs[-1] if outputs else None
    events = decoder.feed("complete", json.dumps([final]))
    assert events == [Done(final or "")]


# -- the fast JSON parse behind QueueDecoder.feed -----------------------------------------------

JSON_TEXTS = [
    '{"msg": "heartbeat"}',
    ' {"a": 1} ',
    '{"a": 1}\n',
    "[1, 2.5e3, null, true]",
    '"text"',
    "NaN",
    "-Infinity",
    "12",
    "",
    " ",
    "{nope",
    '{"a": }',
    '{"a": 1}x',
    '{"a": 1}{"b": 2}',
    "[1,",
    '"unterminated',
    "[" * 50_000,
    "\ufeff{}",
]


def loads_or_none(text):
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def same_json(a, b):
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


@pytest.mark.parametrize("text", JSON_TEXTS, ids=range(len(JSON_TEXTS)))
def test_the_fast_json_parse_agrees_with_json_loads(text):
    assert same_json(_parse_json(text), loads_or_none(text))


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(max_size=40),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(), lambda c: st.lists(c) | st.dictionaries(st.text(), c)
        ).map(json.dumps),
    )
)
def test_the_fast_json_parse_agrees_with_json_loads_on_any_text(text):
    for variant in (text, text[:-1], " " + text, text + " ", text + "]"):
        assert same_json(_parse_json(variant), loads_or_none(variant))
