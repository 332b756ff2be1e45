"""A whole chat on both protocols, against canned Gradio 5 responses."""

import json
import threading

import responses
from httpkit import (
    ANSWER,
    ANSWER_PIECES,
    BASE,
    GENERATE_FN_INDEX,
    HF_BASE,
    PNG,
    PREFIX,
    UPLOAD_PATH,
    FakeSpace,
    calls_to,
    gradio5_config,
    json_of,
    multipart_parts,
    query_of,
    queue_sse,
)

from qvq_sdk import Done, ProcessingStarted, QueuePosition, QVQClient, TextUpdate


def test_queue_chat_with_an_image_uploads_joins_and_streams(space, rsps, tmp_path):
    space.config().upload().queue()
    image = tmp_path / "cat.png"
    image.write_bytes(PNG)
    client = QVQClient(base_url=BASE)

    assert list(client.chat("What is this?", images=[str(image)])) == ANSWER_PIECES

    methods_and_paths = [(c.request.method, c.request.url.split("?")[0]) for c in rsps.calls]
    assert methods_and_paths == [
        ("GET", BASE + "/config"),
        ("POST", PREFIX + "/upload"),
        ("POST", PREFIX + "/queue/join"),
        ("GET", PREFIX + "/queue/data"),
    ]
    (upload,) = calls_to(rsps, "POST", "/gradio_api/upload")
    parts = multipart_parts(upload)
    assert len(parts) == 1
    assert parts[0]["name"] == "files"
    assert parts[0]["filename"] == "cat.png"
    assert parts[0]["content_type"] == "image/png"
    assert parts[0]["data"] == PNG

    (join,) = calls_to(rsps, "POST", "/gradio_api/queue/join")
    payload = json_of(join)
    assert payload["data"] == [
        {"path": UPLOAD_PATH, "orig_name": "cat.png", "meta": {"_type": "gradio.FileData"}},
        "What is this?",
    ]
    assert payload["fn_index"] == GENERATE_FN_INDEX
    assert isinstance(payload["session_hash"], str) and payload["session_hash"]
    assert "event_data" in payload and payload["event_data"] is None
    assert "trigger_id" in payload and payload["trigger_id"] is None

    (stream,) = calls_to(rsps, "GET", "/gradio_api/queue/data")
    assert query_of(stream) == {"session_hash": [payload["session_hash"]]}


def test_queue_session_hash_is_fresh_for_each_request(space, rsps):
    space.config().queue()
    client = QVQClient(base_url=BASE)

    assert client.complete("one") == ANSWER
    assert client.complete("two") == ANSWER

    hashes = [json_of(r)["session_hash"] for r in calls_to(rsps, "POST", "/gradio_api/queue/join")]
    streamed = [query_of(r)["session_hash"][0] for r in calls_to(rsps, "GET", "/gradio_api/queue/data")]
    assert len(hashes) == 2 and hashes[0] != hashes[1]
    assert streamed == hashes


def test_text_only_chat_sends_null_image_and_makes_no_upload(space, rsps):
    space.config().upload().queue()
    client = QVQClient(base_url=BASE)

    assert client.complete("Just text") == ANSWER

    assert calls_to(rsps, "POST", "/gradio_api/upload") == []
    (join,) = calls_to(rsps, "POST", "/gradio_api/queue/join")
    assert json_of(join)["data"] == [None, "Just text"]


def test_call_protocol_posts_data_then_streams_the_event(space, rsps):
    space.config().upload().call(event_id="0f" * 16)
    client = QVQClient(base_url=BASE, protocol="call")

    assert list(client.chat("Describe", images=PNG)) == ANSWER_PIECES

    methods_and_urls = [(c.request.method, c.request.url) for c in rsps.calls]
    assert methods_and_urls == [
        ("GET", BASE + "/config"),
        ("POST", PREFIX + "/upload"),
        ("POST", PREFIX + "/call/generate"),
        ("GET", PREFIX + "/call/generate/" + "0f" * 16),
    ]
    (post,) = calls_to(rsps, "POST", "/gradio_api/call/generate")
    payload = json_of(post)
    # Exactly {"data": [...]}: a session_hash here breaks Gradio 5's GET.
    assert payload == {
        "data": [{"path": UPLOAD_PATH, "orig_name": "image.png", "meta": {"_type": "gradio.FileData"}}, "Describe"]
    }


def test_call_protocol_text_only(space, rsps):
    space.config().upload().call()
    client = QVQClient(base_url=BASE, protocol="call")

    assert client.complete("hi") == ANSWER
    assert calls_to(rsps, "POST", "/gradio_api/upload") == []
    assert json_of(calls_to(rsps, "POST", "/gradio_api/call/generate")[0]) == {"data": [None, "hi"]}


def test_queue_events_are_typed(space):
    space.config().queue()
    client = QVQClient(base_url=BASE)

    events = list(client.events("hi"))

    assert events[0] == QueuePosition(rank=0, queue_size=1, eta=0.31)
    assert events[1] == ProcessingStarted(eta=0.31)
    updates = [e for e in events if isinstance(e, TextUpdate)]
    assert [u.delta for u in updates] == ANSWER_PIECES
    assert [u.text for u in updates] == ["Hel", "Hello", "Hello world"]
    assert not any(u.replaced for u in updates)
    assert events[-1] == Done(ANSWER)
    assert len(events) == 2 + len(ANSWER_PIECES) + 1


def test_call_events_are_typed(space):
    space.config().call()
    client = QVQClient(base_url=BASE, protocol="call")

    events = list(client.events("hi"))

    assert [type(e) for e in events] == [TextUpdate, TextUpdate, TextUpdate, Done]
    assert [e.delta for e in events[:-1]] == ANSWER_PIECES
    assert events[-1] == Done(ANSWER)


def test_complete_returns_the_final_text_even_when_it_differs_from_the_deltas(space, rsps):
    space.config().queue(lambda event_id: queue_sse(event_id, ["Thinking..."], final="Answer: 42"))
    client = QVQClient(base_url=BASE)

    assert client.complete("q") == "Answer: 42"


def test_config_fetched_once_per_client_over_several_chats(space, rsps):
    space.config().upload().queue()
    client = QVQClient(base_url=BASE)

    for _ in range(3):
        assert client.complete("hi", images=PNG) == ANSWER

    assert len(calls_to(rsps, "GET", "/config")) == 1
    assert len(calls_to(rsps, "POST", "/gradio_api/upload")) == 3
    assert len(calls_to(rsps, "POST", "/gradio_api/queue/join")) == 3

    # A new client asks again: the config is per client.
    assert QVQClient(base_url=BASE).complete("hi") == ANSWER
    assert len(calls_to(rsps, "GET", "/config")) == 2


def test_config_fetched_once_when_eight_threads_start_at_once(rsps):
    slow = threading.Event()

    def config(request):
        slow.wait(0.1)  # hold the first fetch open so that the other threads pile up on it
        return 200, {}, json.dumps(gradio5_config())

    rsps.add_callback(responses.GET, BASE + "/config", callback=config, content_type="application/json")
    FakeSpace(rsps).queue()
    client = QVQClient(base_url=BASE)
    barrier = threading.Barrier(8)
    results = []
    errors = []

    def worker(index):
        barrier.wait()
        try:
            results.append(client.complete("hi %d" % index))
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    assert errors == []
    assert results == [ANSWER] * 8
    assert len(calls_to(rsps, "GET", "/config")) == 1
    prompts = sorted(json_of(r)["data"][1] for r in calls_to(rsps, "POST", "/gradio_api/queue/join"))
    assert prompts == sorted("hi %d" % i for i in range(8))


def test_gradio4_config_without_prefix_uses_unprefixed_routes(rsps):
    space = FakeSpace(rsps, api_prefix="")
    space.config(api_prefix=None).upload().queue()
    client = QVQClient(base_url=BASE)

    assert client.complete("hi", images=PNG) == ANSWER
    assert [c.request.url.split("?")[0] for c in rsps.calls] == [
        BASE + "/config",
        BASE + "/upload",
        BASE + "/queue/join",
        BASE + "/queue/data",
    ]


def test_space_id_maps_to_its_hf_space_host(rsps):
    FakeSpace(rsps, base=HF_BASE).config().queue()
    client = QVQClient(space="Qwen/QVQ-72B-preview")

    assert client.complete("hi") == ANSWER
    assert rsps.calls[0].request.url == HF_BASE + "/config"


def test_image_url_is_downloaded_then_uploaded(space, rsps):
    rsps.add(responses.GET, "https://images.example.com/pics/dog.png", body=PNG, content_type="image/png")
    space.config().upload().queue()
    client = QVQClient(base_url=BASE)

    assert client.complete("hi", images="https://images.example.com/pics/dog.png") == ANSWER

    (upload,) = calls_to(rsps, "POST", "/gradio_api/upload")
    part = multipart_parts(upload)[0]
    assert (part["filename"], part["content_type"], part["data"]) == ("dog.png", "image/png", PNG)
    assert json_of(calls_to(rsps, "POST", "/gradio_api/queue/join")[0])["data"][0]["orig_name"] == "dog.png"
