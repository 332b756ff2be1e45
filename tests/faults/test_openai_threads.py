"""protocol="openai" over real sockets: one client shared by many threads. Each thread gets its
own answer (the server echoes each prompt: cross-talk would show), the pool's connections are
reused by the next round, and stopping some chats leaves the others whole."""

from __future__ import annotations

import threading
import time

from faultopenai import (
    ROLE,
    STALL,
    TOKEN,
    content,
    echo,
    last_user_text,
    make_openai_fixture,  # noqa: F401  (pytest fixture)
    openai_server_fixture,  # noqa: F401  (pytest fixture)
    sse,
)

from qvq_sdk import Done

THREADS = 16


def run_threads(count, target):
    """Runs ``target(index)`` in ``count`` threads started together; their results and errors."""
    barrier = threading.Barrier(count)
    results, errors = [None] * count, []

    def run(index):
        try:
            barrier.wait(10)
            results[index] = target(index)
        except BaseException as exc:  # the test checks there is none
            errors.append(exc)

    threads = [
        threading.Thread(target=run, args=(index,), name="chat-%d" % index, daemon=True) for index in range(count)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert not any(thread.is_alive() for thread in threads)
    return results, errors


def test_sixteen_threads_share_one_client_each_with_its_own_answer(openai_server, make_openai):
    openai_server.on("chat", echo())
    client = make_openai()

    def chat(index):
        prompt = "Question number %d from its own thread" % index
        return prompt, "".join(client.chat(prompt))

    for _ in range(2):  # the second round reuses the pool's connections
        results, errors = run_threads(THREADS, chat)
        assert errors == []
        assert all(answer == prompt for prompt, answer in results)
    assert len(openai_server.chats) == 2 * THREADS
    assert openai_server.connections <= THREADS
    assert all(request.headers["authorization"] == "Bearer " + TOKEN for request in openai_server.chats)


def test_stopping_some_chats_leaves_the_others_whole(openai_server, make_openai):
    def by_prompt(exchange):
        if last_user_text(exchange.request.json).startswith("stop"):
            sse(ROLE, content("Hel"), STALL)(exchange)
        else:
            echo()(exchange)

    openai_server.on("chat", by_prompt)
    client = make_openai(timeout=(2, 20))  # a stop that waited for the read timeout would show
    half = THREADS // 2
    streams = [client.events(("stop me %d" if index < half else "keep me %d") % index) for index in range(THREADS)]
    first_events = [threading.Event() for _ in range(THREADS)]

    def read(index):
        items = []
        for item in streams[index]:
            items.append(item)
            first_events[index].set()
        return items

    done = []
    runner = threading.Thread(target=lambda: done.append(run_threads(THREADS, read)), daemon=True)
    runner.start()
    assert all(event.wait(10) for event in first_events[:half])
    assert openai_server.wait_stalled(count=half)
    started = time.monotonic()
    for stream in streams[:half]:
        stream.stop()
    runner.join(25)
    assert not runner.is_alive()
    assert time.monotonic() - started < 5
    ((results, errors),) = done

    assert errors == []
    for index in range(half):
        assert streams[index].stopped and not any(isinstance(item, Done) for item in results[index])
    for index in range(half, THREADS):
        assert not streams[index].stopped
        assert results[index][-1] == streams[index].done
        assert streams[index].done.text == "keep me %d" % index
    stopped = {request.connection for request in openai_server.chats if "stop me" in str(request.json)}
    assert openai_server.wait_for(lambda: stopped <= set(openai_server.client_closed))
