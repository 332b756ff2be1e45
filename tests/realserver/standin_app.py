"""A local stand-in of the Qwen QVQ-72B-preview Space, for real-server tests.

Runs under a venv that has gradio (4.x, 5.x or 6.x) installed -- not the test venv::

    python standin_app.py --port 7860 [--host 127.0.0.1] [--mode stream|return]
        [--concurrency K] [--max-file-size SIZE] [--record-dir DIR]
        [--ssl-certfile CHAIN.pem --ssl-keyfile KEY.pem]

With ``--ssl-certfile`` / ``--ssl-keyfile`` it serves HTTPS (Gradio's own TLS: ``launch(ssl_certfile=...,
ssl_keyfile=..., ssl_verify=False)``; ``ssl_verify=False`` only affects Gradio's check of its own URL).

It mirrors the Space's API: one queued endpoint ``api_name="generate"`` with inputs
``(gr.Image(type="filepath"), gr.Textbox())`` and one ``gr.Textbox()`` output. In ``stream``
mode ``generate`` is a generator; in ``return`` mode a plain function that returns the final
text of the same behaviour (so its stream holds only the completion).

The prompt's first word scripts the behaviour; anything else is echoed:

=================  ==========================================================================
``<anything>``     ``You said: {text} | image: {desc}`` word by word (append-only); desc is
                   ``none`` or ``{width}x{height}`` of the received image.
``words N [U]``    ``w0 w1 ... w{N-1}`` in U updates (default N), append-only, no sleeps.
``rewrite``        ``Thinking...`` then ``Answer: 42`` (not append-only).
``empty``          stream: a generator that yields nothing; return: returns ``""``.
``none``           stream: yields ``None``; return: returns ``None``.
``error MSG``      ``raise gr.Error(MSG)``.
``quota``          ``gr.Error`` with ZeroGPU's "Please retry in 0:03:12" quota text.
``quota-html``     ``gr.Error`` with ZeroGPU's quota text ending in an ``<a href>`` link.
``crash``          ``raise RuntimeError("internal detail")`` (hidden by Gradio: no show_error).
``slow ID [N]``    ``tick 0 tick 1 ...`` one tick every 0.05 s, up to N (default 2000) ticks;
                   writes ``tick i`` per tick and finally ``stopped at i`` to
                   ``{record_dir}/{ID}.log``, so a test can see the app stop after a cancel.
``sleep S``        sleeps S seconds, then answers ``slept``.
``say WORDS``      the echo above (``You said: say WORDS | image: ...``), whatever WORDS are.
``warn MSG``       ``gr.Warning(MSG)`` (a queue ``log`` message, level ``warning``), then
                   answers ``noted: MSG`` word by word.
``info MSG``       ``gr.Info(MSG)`` (``log``, level ``info``), then ``noted: MSG``.
``success MSG``    ``gr.Success(MSG)`` (``log``, level ``success``; gradio >= 5.10), falling
                   back to ``gr.Info`` on older gradio; then ``noted: MSG``.
``progress [N]``   reports N (default 3) steps through ``gr.Progress`` (queue ``progress``
                   messages: index 0..N-1 of N, unit ``steps``, desc ``Thinking``), one every
                   0.2 s, then answers ``Answer: 42``. Gradio 5.x samples progress every
                   0.1 s, so a step can still be missed under load: do not count them.
                   The ``progress`` parameter is not an API input (Gradio leaves Progress
                   parameters out of the endpoint).
=================  ==========================================================================

The toasts and progress are queue (``/queue/data``) messages; the ``/call`` protocol's stream
has no event for them.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

# Never reach the internet: no analytics, no version check, no hub telemetry, no SSR node.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("GRADIO_SSR_MODE", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")

import gradio as gr

QUOTA = "You have exceeded your GPU quota (60s left vs. 120s requested). Please retry in 0:03:12"
QUOTA_HTML = (
    "You have exceeded your GPU quota (60s requested vs. 56s left). "
    '<a href="https://huggingface.co/join">Create a free account</a> '
    "to get more usage quota."
)
TICK_SECONDS = 0.05
PROGRESS_SECONDS = 0.2  # gradio 5.x sends the latest progress every 0.1 s: shorter steps merge
#: The toast commands; gr.Success exists from gradio 5.10 (5.9.1 falls back to gr.Info).
NOTIFY = {"warn": gr.Warning, "info": gr.Info, "success": getattr(gr, "Success", gr.Info)}

RECORD_DIR = os.path.join(tempfile.gettempdir(), "qvq-standin-records")


def _image_desc(image):
    if not image:
        return "none"
    from PIL import Image

    with Image.open(image) as im:
        return "%dx%d" % im.size


def _prefixes(words, updates):
    """Yield the text of the first ceil(k*n/updates) words, k = 1..updates (append-only)."""
    n = len(words)
    updates = max(1, min(updates, n)) if n else 1
    text = " ".join(words)
    # Offsets of the end of each word in `text`.
    ends, pos = [], 0
    for w in words:
        pos += len(w)
        ends.append(pos)
        pos += 1
    for k in range(1, updates + 1):
        count = -(-k * n // updates)
        yield text[: ends[count - 1]] if count else ""


def _slow_ticks(record_id, count):
    """Yield i for each tick, recording to {RECORD_DIR}/{record_id}.log; 'stopped at i' last."""
    os.makedirs(RECORD_DIR, exist_ok=True)
    path = os.path.join(RECORD_DIR, os.path.basename(record_id) + ".log")
    i = 0
    with open(path, "a", buffering=1) as log:
        try:
            for i in range(count):
                log.write("tick %d\n" % i)
                yield i
                time.sleep(TICK_SECONDS)
        finally:
            log.write("stopped at %d\n" % i)


def _script(image, text):
    """The behaviour for one request, as a generator of (kind, value) steps.

    kind is "yield" (an update), "sleep" (seconds; no output), "raise" (an exception),
    "notify" (a (gr.Warning/gr.Info/gr.Success, message) pair to call) or "progress"
    ((index, length, desc) for gr.Progress).
    """
    text = text or ""
    parts = text.split()
    cmd, args = (parts[0], parts[1:]) if parts else ("", [])
    if cmd == "words" and args:
        n = int(args[0])
        updates = int(args[1]) if len(args) > 1 else n
        for prefix in _prefixes(["w%d" % i for i in range(n)], updates):
            yield "yield", prefix
    elif cmd == "rewrite":
        yield "yield", "Thinking..."
        yield "yield", "Answer: 42"
    elif cmd == "empty":
        return
    elif cmd == "none":
        yield "yield", None
    elif cmd == "error":
        yield "raise", gr.Error(text.split(None, 1)[1] if len(parts) > 1 else "error")
    elif cmd == "quota":
        yield "raise", gr.Error(QUOTA)
    elif cmd == "quota-html":
        yield "raise", gr.Error(QUOTA_HTML)
    elif cmd == "crash":
        yield "raise", RuntimeError("internal detail")
    elif cmd == "sleep" and args:
        yield "sleep", float(args[0])
        yield "yield", "slept"
    elif cmd in NOTIFY:
        message = text.split(None, 1)[1] if len(parts) > 1 else cmd
        yield "notify", (NOTIFY[cmd], message)
        words = ("noted: " + message).split(" ")
        for prefix in _prefixes(words, len(words)):
            yield "yield", prefix
    elif cmd == "progress":
        steps = int(args[0]) if args else 3
        for i in range(steps):
            yield "progress", (i, steps, "Thinking")
            yield "sleep", PROGRESS_SECONDS
        yield "yield", "Answer: 42"
    else:
        words = ("You said: %s | image: %s" % (text, _image_desc(image))).split(" ")
        for prefix in _prefixes(words, len(words)):
            yield "yield", prefix


def _slow_args(text):
    parts = (text or "").split()
    if parts and parts[0] == "slow" and len(parts) > 1:
        return parts[1], (int(parts[2]) if len(parts) > 2 else 2000)
    return None


def _side_effect(kind, value, progress):
    """Run a "sleep", "notify" or "progress" step; False for any other kind."""
    if kind == "sleep":
        time.sleep(value)
    elif kind == "notify":
        value[0](value[1])
    elif kind == "progress":
        progress((value[0], value[1]), desc=value[2])
    else:
        return False
    return True


def generate_stream(image, text, progress=gr.Progress()):  # noqa: B008 (how Gradio spells it)
    slow = _slow_args(text)
    if slow:
        out = ""
        for i in _slow_ticks(*slow):
            out += "tick %d " % i
            yield out
        return
    for kind, value in _script(image, text):
        if kind == "raise":
            raise value
        if not _side_effect(kind, value, progress):
            yield value


def generate_return(image, text, progress=gr.Progress()):  # noqa: B008
    slow = _slow_args(text)
    if slow:
        out = ""
        for i in _slow_ticks(*slow):
            out += "tick %d " % i
        return out
    if (text or "").split()[:1] == ["empty"]:
        return ""
    result = None
    for kind, value in _script(image, text):
        if kind == "raise":
            raise value
        if not _side_effect(kind, value, progress):
            result = value
    return result


def build(mode="stream", concurrency=4):
    fn = generate_stream if mode == "stream" else generate_return
    with gr.Blocks(title="QVQ-72B-preview stand-in") as demo:
        image = gr.Image(type="filepath", label="Image")
        text = gr.Textbox(label="Prompt")
        button = gr.Button("Submit")
        output = gr.Textbox(label="Output")
        button.click(fn, [image, text], output, api_name="generate")
    demo.queue(default_concurrency_limit=concurrency)
    return demo


def main(argv=None):
    global RECORD_DIR
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--mode", choices=["stream", "return"], default="stream")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument(
        "--max-file-size", default=None, help='passed to launch(max_file_size=...), e.g. "1mb" or 1000000'
    )
    parser.add_argument("--record-dir", default=None)
    parser.add_argument("--ssl-certfile", default=None, help="serve HTTPS with this certificate chain (PEM)")
    parser.add_argument("--ssl-keyfile", default=None, help="and this private key (PEM)")
    args = parser.parse_args(argv)
    if bool(args.ssl_certfile) != bool(args.ssl_keyfile):
        parser.error("--ssl-certfile and --ssl-keyfile go together")
    if args.record_dir:
        RECORD_DIR = os.path.abspath(args.record_dir)
    max_file_size = args.max_file_size
    if max_file_size is not None and max_file_size.isdigit():
        max_file_size = int(max_file_size)
    kwargs = {}
    if max_file_size is not None:
        kwargs["max_file_size"] = max_file_size
    if args.ssl_certfile:
        kwargs.update(ssl_certfile=args.ssl_certfile, ssl_keyfile=args.ssl_keyfile, ssl_verify=False)
    print(
        "gradio %s, mode=%s, concurrency=%d, records in %s" % (gr.__version__, args.mode, args.concurrency, RECORD_DIR),
        flush=True,
    )
    build(args.mode, args.concurrency).launch(
        server_name=args.host, server_port=args.port, share=False, inbrowser=False, show_error=False, **kwargs
    )


if __name__ == "__main__":
    main()
