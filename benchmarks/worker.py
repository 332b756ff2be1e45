"""One benchmark client process: runs one client on one case and prints its figures as JSON.

Started by ``run.py`` under the client's own venv; not meant to be run by hand, though it can
be (``python worker.py sdk-queue long --base-url http://127.0.0.1:7860``).

Clients (each written the way its documentation shows a user to write it):

- ``sdk-queue`` / ``sdk-call``: ``QVQClient(base_url=..., protocol=...).chat(...)`` iterated.
- ``gradio_client``: ``Client(url).submit(image, prompt, api_name="/generate")`` iterated.
- ``g4f``: ``Qwen_QVQ_72B.create_async_generator(...)`` (g4f 0.5.3.1), its ``url`` pointed here.
- ``raw``: the floor. Plain ``requests``: ``POST /queue/join``, then ``GET /queue/data`` read
  with ``iter_lines`` and ``json.loads`` per event; the text is the appended pieces. No timeout.
- ``raw-timeout``: the same floor with ``timeout=(10, 60)`` on every request, qvq-sdk's
  default. A socket with a timeout makes CPython ``poll`` before every ``recv``, so this floor
  pays what any client with a read timeout pays.

The ``openai`` scenario's clients, against ``openai_stub.py`` (``--base-url`` ends in ``/v1``):

- ``sdk-openai``: ``QVQClient(key, base_url=..., protocol="openai", model=...).chat(...)``.
- ``openai-python``: ``OpenAI(base_url=..., api_key=...).chat.completions.create(...,
  stream=True)`` iterated, the text from ``chunk.choices[0].delta.content``.
- ``raw-openai``: the floor. Plain ``requests`` on one session: ``POST /chat/completions`` with
  ``stream=True``, ``iter_lines``, ``json.loads`` of each ``data: {`` line, the content
  collected; read to the end of the stream, so that its connection is reused.

Cases: ``short``, ``long``, ``fine``, ``upload``, ``concurrent`` (see ``scenario_loopback.py``).
Each case does a first chat and then warm ones through the same client; ``short`` then makes
``--cold-clients`` more new clients (new session, new connection, its own ``/config``), one
chat each, its clock started before the client is made: the cold samples. ``upload`` does a text chat and then the
image chat; ``concurrent`` does a text chat and then N chats at once.
``network`` (``raw``, ``sdk-queue``, ``gradio_client``; HTTPS through run.py's shaper) does
``--chats`` short chats through one new client and one chat through each of ``--cold-clients``
more; per chat it also counts the new connections (from the shaper's ``--stats-port``). Its
raw floor knows the API's prefix and fn_index (no ``/config``) and reads each stream to its
end, so that ``requests`` reuses the connection. The ``openai`` clients' cases are ``long``
and ``fine`` (warm chats as above; bytes from the stub's ``--stats-port``) and ``short``, which
runs as ``network`` does: sequential chats through one client, then new clients, one chat each,
connections counted.

Figures per chat: wall seconds, client CPU seconds (``getrusage(RUSAGE_SELF)`` user + sys, so
a client's background threads count), seconds from the submit call to the first text, bytes
the server sent (read from the byte-counting proxy's control port, or the stub's), characters
of answer.
Per process: peak RSS (``ru_maxrss``), and for ``upload`` the peak before the image chat.
"""

from __future__ import annotations

import json
import os
import resource
import socket
import sys
import threading
import time

PROMPTS = {
    "short": "words 10",
    "long": "words 20000 400",
    "fine": "words 5000",
    "warmup": "words 10",
    "upload": "describe",
    "concurrent": "words 2000 200",
}
#: the openai scenario's: openai_stub.py's scripts, N tokens of 4 characters, K per delta
OPENAI_PROMPTS = {"short": "tokens 10", "long": "tokens 20000 4", "fine": "tokens 5000"}
#: warm chats after the cold one (their median is the process's warm figure)
WARM_CHATS = {"short": 3, "long": 9, "fine": 3}
EXPECTED_CHARS = {
    "words 10": 29,
    "words 20000 400": 128889,
    "words 5000": 28889,
    "words 2000 200": 10889,
    "tokens 10": 40,
    "tokens 20000 4": 80000,
    "tokens 5000": 20000,
}
#: the openai clients' model and API key (the stub checks neither; each client sends both)
OPENAI_MODEL = "Qwen/QVQ-72B-Preview"
OPENAI_KEY = "sk-benchmark"
OPENAI_CLIENTS = ("raw-openai", "sdk-openai", "openai-python")
#: the module each client imports, before any clock starts in the network and openai cases
MODULES = {
    "raw": "requests",
    "sdk-queue": "qvq_sdk",
    "gradio_client": "gradio_client",
    "raw-openai": "requests",
    "sdk-openai": "qvq_sdk",
    "openai-python": "openai",
}


def cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_bytes():
    """This process's peak RSS. ``ru_maxrss`` would do, but Linux carries the parent's RSS at
    fork into it across exec, so it reads the same figure, ``VmHWM``, for this process alone."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def wire_bytes(counter_port):
    """Bytes the server has sent so far (0 when run without a counter): the last number of the
    line the port answers, the proxy's ``"<bytes>"`` or the stub's ``"<connections> <bytes>"``."""
    if not counter_port:
        return 0
    with socket.create_connection(("127.0.0.1", counter_port)) as sock:
        return int(sock.makefile().readline().split()[-1])


# -- the clients: each returns chat(prompt, image_path) -> (text, first_text_seconds) -------------


def make_sdk(base_url, protocol, token=False, **options):
    from qvq_sdk import QVQClient

    client = QVQClient(token, base_url=base_url, protocol=protocol, **options)

    def chat(prompt, image=None):
        started = time.perf_counter()
        first = None
        pieces = []
        for piece in client.chat(prompt, images=image):
            if first is None:
                first = time.perf_counter() - started
            pieces.append(piece)
        return "".join(pieces), first

    chat.close = client.close
    return chat


def make_gradio_client(base_url):
    from gradio_client import Client, handle_file

    client = Client(base_url, verbose=False)

    def chat(prompt, image=None):
        started = time.perf_counter()
        first = None
        text = ""
        job = client.submit(handle_file(image) if image else None, prompt, api_name="/generate")
        for output in job:
            if first is None and output:
                first = time.perf_counter() - started
            text = output
        return text or job.result(), first

    chat.close = client.close
    return chat


def make_g4f(base_url):
    import asyncio

    import g4f.debug
    from g4f.Provider.hf_space.Qwen_QVQ_72B import Qwen_QVQ_72B

    g4f.debug.version_check = False
    Qwen_QVQ_72B.url = base_url  # the provider builds every URL from this class attribute
    loop = asyncio.new_event_loop()

    async def run(prompt, image):
        started = time.perf_counter()
        first = None
        pieces = []
        media = [(image, os.path.basename(image))] if image else None
        messages = [{"role": "user", "content": prompt}]
        async for piece in Qwen_QVQ_72B.create_async_generator(Qwen_QVQ_72B.default_model, messages, media=media):
            if first is None and piece:
                first = time.perf_counter() - started
            pieces.append(piece)
        return "".join(pieces), first

    def chat(prompt, image=None):
        return loop.run_until_complete(run(prompt, image))

    chat.run = run  # the concurrent case gathers coroutines on the same loop
    chat.loop = loop
    chat.close = loop.close
    return chat


#: the (connect, read) timeout of the ``raw-timeout`` floor: qvq-sdk's default
RAW_TIMEOUT = (10, 60)


def make_raw(base_url, timeout=None, known=None, drain=False):
    """The raw floor. ``known``: ``(api_prefix, fn_index)`` known in advance, so it never reads
    ``/config``. ``drain``: read each stream to its end (past ``process_completed``), so that
    ``requests`` puts the connection back in its pool, as a client reusing it must."""
    import requests

    state = {}
    if known is not None:
        state["prefix"], state["fn_index"] = base_url + known[0], known[1]
    local = threading.local()

    def session():
        if not hasattr(local, "session"):
            local.session = requests.Session()
        return local.session

    def chat(prompt, image=None):
        started = time.perf_counter()
        http = session()
        if not state:
            config = http.get(base_url + "/config", timeout=timeout).json()
            state["prefix"] = base_url + config.get("api_prefix", "")
            state["fn_index"] = next(
                i for i, dep in enumerate(config["dependencies"]) if dep.get("api_name") == "generate"
            )
        prefix = state["prefix"]
        image_data = None
        if image:
            with open(image, "rb") as f:
                paths = http.post(prefix + "/upload", files={"files": f}, timeout=timeout).json()
            image_data = {"path": paths[0], "meta": {"_type": "gradio.FileData"}}
        session_hash = os.urandom(8).hex()
        http.post(
            prefix + "/queue/join",
            json={"data": [image_data, prompt], "fn_index": state["fn_index"], "session_hash": session_hash},
            timeout=timeout,
        ).raise_for_status()
        first = None
        pieces = []
        data_url = prefix + "/queue/data"
        with http.get(data_url, params={"session_hash": session_hash}, stream=True, timeout=timeout) as response:
            for line in response.iter_lines(chunk_size=65536):
                if not line.startswith(b"data:"):
                    continue
                message = json.loads(line[5:])
                kind = message["msg"]
                if kind == "process_generating" or kind == "process_completed":
                    value = message["output"]["data"][0]
                    if isinstance(value, str):
                        pieces = [value]
                    else:
                        pieces.extend(edit[2] for edit in value)
                    if first is None and pieces:
                        first = time.perf_counter() - started
                    if kind == "process_completed" and not drain:
                        break
        return "".join(pieces), first

    def close():
        if hasattr(local, "session"):
            local.session.close()

    chat.close = close
    return chat


def make_openai_python(base_url):
    from openai import OpenAI

    client = OpenAI(base_url=base_url, api_key=OPENAI_KEY)

    def chat(prompt, image=None):
        started = time.perf_counter()
        first = None
        pieces = []
        stream = client.chat.completions.create(
            model=OPENAI_MODEL,
            messages=[{"role": "user", "content": prompt}],
            stream=True,
            stream_options={"include_usage": True},
        )
        for chunk in stream:
            if chunk.choices:
                content = chunk.choices[0].delta.content
                if content:
                    if first is None:
                        first = time.perf_counter() - started
                    pieces.append(content)
        return "".join(pieces), first

    chat.close = client.close
    return chat


def make_raw_openai(base_url):
    """The openai scenario's floor: what any client of the stream must do, and nothing else."""
    import requests

    session = requests.Session()
    url = base_url + "/chat/completions"
    headers = {"Authorization": "Bearer " + OPENAI_KEY}
    loads = json.loads

    def chat(prompt, image=None):
        started = time.perf_counter()
        first = None
        pieces = []
        body = {
            "model": OPENAI_MODEL,
            "messages": [{"role": "user", "content": prompt}],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        with session.post(url, json=body, headers=headers, stream=True) as response:
            response.raise_for_status()
            for line in response.iter_lines(chunk_size=65536):
                if line.startswith(b"data: {"):  # not [DONE], not the blank line between events
                    choices = loads(line[6:])["choices"]
                    if choices:
                        content = choices[0]["delta"].get("content")
                        if content:
                            if first is None:
                                first = time.perf_counter() - started
                            pieces.append(content)
        return "".join(pieces), first

    chat.close = session.close
    return chat


def make_client(name, base_url):
    if name == "sdk-openai":
        return make_sdk(base_url, "openai", token=OPENAI_KEY, model=OPENAI_MODEL)
    if name == "openai-python":
        return make_openai_python(base_url)
    if name == "raw-openai":
        return make_raw_openai(base_url)
    if name == "sdk-queue":
        return make_sdk(base_url, "queue")
    if name == "sdk-call":
        return make_sdk(base_url, "call")
    if name == "gradio_client":
        return make_gradio_client(base_url)
    if name == "g4f":
        return make_g4f(base_url)
    if name == "raw":
        return make_raw(base_url)
    if name == "raw-timeout":
        return make_raw(base_url, timeout=RAW_TIMEOUT)
    raise SystemExit("unknown client %r" % name)


# -- the cases ---------------------------------------------------------------------------------


def measured(chat, prompt, counter_port, image=None):
    bytes_before = wire_bytes(counter_port)
    cpu_before = cpu_seconds()
    started = time.perf_counter()
    error = None
    try:
        text, first = chat(prompt, image)
    except Exception as exc:  # a client that fails a case is reported, not fatal
        text, first, error = "", None, "%s: %s" % (type(exc).__name__, str(exc)[:200])
    wall = time.perf_counter() - started
    cpu = cpu_seconds() - cpu_before
    result = {
        "wall": wall,
        "cpu": cpu,
        "first": first,
        "bytes": wire_bytes(counter_port) - bytes_before,
        "chars": len(text),
    }
    expected = EXPECTED_CHARS.get(prompt)
    if error is None and expected is not None and len(text) != expected:
        error = "answer has %d characters, expected %d" % (len(text), expected)
    if error is None and image and "image: none" in text:
        error = "the image did not arrive: %r" % text[:80]
    if error:
        result["error"] = error
    return result


def run_cold_clients(name, base_url, count, prompt, counter_port):
    """``count`` new clients, one chat each: the cold samples of a process.

    Each is made inside the chat's clock (``first``, ``wall``, ``cpu`` and ``bytes`` count its
    construction and its ``/config`` read, whenever the client makes them), with the client's
    modules already imported by the process's first client; it is closed after its chat,
    outside the clock, so that every new client opens a new connection.
    """
    results = []
    for _ in range(count):
        made = []

        def cold_chat(prompt, image=None, made=made):
            started = time.perf_counter()
            chat = make_client(name, base_url)
            made.append(chat)
            built = time.perf_counter() - started
            text, first = chat(prompt, image)
            return text, None if first is None else first + built

        results.append(measured(cold_chat, prompt, counter_port))
        for chat in made:
            chat.close()
        if "error" in results[-1]:
            break
    return results


def run_concurrent(name, chat, count, counter_port):
    prompt = PROMPTS["concurrent"]
    bytes_before = wire_bytes(counter_port)
    cpu_before = cpu_seconds()
    started = time.perf_counter()
    errors = []
    lengths = []
    if name == "g4f":
        import asyncio

        async def everything():
            return await asyncio.gather(*(chat.run(prompt, None) for _ in range(count)), return_exceptions=True)

        for outcome in chat.loop.run_until_complete(everything()):
            if isinstance(outcome, Exception):
                errors.append("%s: %s" % (type(outcome).__name__, outcome))
            else:
                lengths.append(len(outcome[0]))
    else:
        lock = threading.Lock()

        def one():
            try:
                text, _ = chat(prompt, None)
            except Exception as exc:
                with lock:
                    errors.append("%s: %s" % (type(exc).__name__, exc))
                return
            with lock:
                lengths.append(len(text))

        threads = [threading.Thread(target=one) for _ in range(count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    wall = time.perf_counter() - started
    result = {
        "wall": wall,
        "cpu": cpu_seconds() - cpu_before,
        "first": None,
        "bytes": wire_bytes(counter_port) - bytes_before,
        "chars": sum(lengths),
    }
    bad = [n for n in lengths if n != EXPECTED_CHARS[prompt]]
    if errors or bad:
        result["error"] = "; ".join(errors[:2] + ["%d short answers" % len(bad)] * bool(bad))
    return result


def net_stats(stats_port):
    """(connections accepted, bytes delivered to the clients) so far, from the shaper's stats port."""
    with socket.create_connection(("127.0.0.1", stats_port)) as sock:
        connections, received = sock.makefile().readline().split()
    return int(connections), int(received)


def run_sequential(make, prompt, stats_port, chats, cold_clients):
    """``chats`` sequential chats through one new client (``make()``), then one chat through each
    of ``cold_clients`` more new clients (more cold samples per process).

    A new client's first chat is a cold one: its clock starts before the client is made
    (gradio_client reads its config in ``Client()``; qvq-sdk and the raw floor do nothing
    there), so its first text counts everything a new client does before it. Each chat records
    the new connections the server side (``stats_port``: the shaper, or the stub) accepted during
    it (a cold one also the constructor's). Returns ``(chats of the first client, [first chat of
    each further client])``.
    """
    sequential = sequential_chats(make, prompt, stats_port, chats)
    cold = []
    for _ in range(cold_clients if "error" not in sequential[-1] else 0):
        cold += sequential_chats(make, prompt, stats_port, 1)
        if "error" in cold[-1]:
            break
    return sequential, cold


def sequential_chats(make, prompt, stats_port, chats):
    chat = None
    results = []
    for _ in range(chats):
        connections_before, bytes_before = net_stats(stats_port)
        cpu_before = cpu_seconds()
        started = time.perf_counter()
        error = None
        text, first = "", None
        try:
            if chat is None:
                chat = make()
            called = time.perf_counter()
            text, first = chat(prompt, None)
            if first is not None:
                first += called - started
        except Exception as exc:
            error = "%s: %s" % (type(exc).__name__, str(exc)[:200])
        wall = time.perf_counter() - started
        cpu = cpu_seconds() - cpu_before
        connections_after, bytes_after = net_stats(stats_port)
        result = {
            "wall": wall,
            "cpu": cpu,
            "first": first,
            "bytes": bytes_after - bytes_before,
            "connections": connections_after - connections_before,
            "chars": len(text),
        }
        if error is None and len(text) != EXPECTED_CHARS[prompt]:
            error = "answer has %d characters, expected %d" % (len(text), EXPECTED_CHARS[prompt])
        if error:
            result["error"] = error
        results.append(result)
        if error:
            break
    return results


def make_network_client(name, base_url, known):
    """The clients of the network scenario. The certificate's CA comes from the environment,
    as a user would give it: ``REQUESTS_CA_BUNDLE`` (requests: qvq-sdk and the raw floor) and
    ``SSL_CERT_FILE`` (httpx: gradio_client)."""
    if name == "raw":
        # the floor: plain requests on one session, the API's prefix and fn_index known in
        # advance (no /config), each stream read to its end so that its connection is reused
        return make_raw(base_url, known=known, drain=True)
    if name in ("sdk-queue", "gradio_client"):
        return make_client(name, base_url)
    raise SystemExit("client %r is not in the network scenario" % name)


def main(argv):
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("client")
    parser.add_argument("case", choices=["short", "long", "fine", "upload", "concurrent", "network"])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--counter-port", type=int, default=0)
    parser.add_argument("--image")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--stats-port", type=int, help="network, openai short: the shaper's or the stub's stats port")
    parser.add_argument("--chats", type=int, default=8, help="network, openai short: sequential chats, one client")
    parser.add_argument(
        "--cold-clients", type=int, default=2, help="network and short: more new clients, one chat each"
    )
    parser.add_argument("--api-prefix", default="/gradio_api", help="network: the raw floor's known API prefix")
    parser.add_argument("--fn-index", type=int, help="network: the raw floor's known fn_index of /generate")
    args = parser.parse_args(argv)

    of_openai = args.client in OPENAI_CLIENTS
    if args.case == "network" or (of_openai and args.case == "short"):
        # imported before any clock starts: a cold chat is a new client, not a new process
        __import__(MODULES[args.client])
        if of_openai:
            prompt = OPENAI_PROMPTS["short"]

            def make():
                return make_client(args.client, args.base_url)

        else:
            prompt = PROMPTS["short"]

            def make():
                return make_network_client(args.client, args.base_url, (args.api_prefix, args.fn_index))

        out = {"client": args.client, "case": args.case}
        out["chats"], out["cold"] = run_sequential(make, prompt, args.stats_port, args.chats, args.cold_clients)
        out["peak_rss"] = peak_rss_bytes()
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()
        os._exit(0)

    started = time.perf_counter()
    chat = make_client(args.client, args.base_url)
    out = {"client": args.client, "case": args.case, "setup": time.perf_counter() - started}
    if args.case in ("short", "long", "fine"):
        prompt = (OPENAI_PROMPTS if of_openai else PROMPTS)[args.case]
        out["chats"] = [measured(chat, prompt, args.counter_port) for _ in range(1 + WARM_CHATS[args.case])]
        if args.case == "short" and args.cold_clients:
            out["cold"] = run_cold_clients(args.client, args.base_url, args.cold_clients, prompt, args.counter_port)
    elif args.case == "upload":
        warm = measured(chat, PROMPTS["warmup"], args.counter_port)
        out["idle_rss"] = peak_rss_bytes()
        out["chats"] = [warm, measured(chat, PROMPTS["upload"], args.counter_port, image=args.image)]
    else:
        warm = measured(chat, PROMPTS["warmup"], args.counter_port)
        out["chats"] = [warm, run_concurrent(args.client, chat, args.concurrency, args.counter_port)]
    out["peak_rss"] = peak_rss_bytes()
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()
    os._exit(0)  # don't wait for a client's leftover background threads


if __name__ == "__main__":
    main(sys.argv[1:])
