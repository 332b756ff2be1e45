"""Every code example in README.md and docs/ is run, the way a reader would run it.

- Each fenced ``python`` block runs as a script of its own (``run_example.py``: then its
  ``test_*`` functions are called, as pytest would), in a fresh temporary directory holding
  the files examples mention (``cat.jpg``, ``photo.jpg``: real small JPEGs; and a copy of
  the repository's ``examples/``, whose ``examples/cat.jpg`` the first examples send), with
  no token and ``HOME`` pointing at an empty directory.
- Blocks that talk to a Space run against a real Gradio stand-in of it (``standin``):
  ``QVQ_BASE_URL`` points at it, so ``QVQClient()`` reaches it unchanged. They carry the
  ``realserver`` marker. Blocks that use ``FakeSpace`` or ``FakeOpenAI`` need no server and get no
  ``QVQ_BASE_URL``: they must not touch the network.
- In ``bash`` blocks, each command that runs the ``qvq`` command (a line or ``&&`` part
  that starts with ``qvq `` or ``python -m qvq_sdk``, or pipes into ``| qvq``) runs under
  bash with ``QVQ_BASE_URL`` set; the address ``http://127.0.0.1:7860`` in a command is
  replaced by the stand-in's. Other commands (``pip install``, ``python -m pytest``,
  starting a server) are not run: they install or test the project, which the test run
  itself does.
- A ``text`` block right after the HTML comment ``<!-- output of the example above -->`` is
  the exact output of the python block before it, and is checked.

Blocks that are not code to run (a signature, console output) must not be fenced as
``python`` or ``bash``: use ``text``.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

import pytest

REPO = Path(__file__).resolve().parents[2]
RUNNER = Path(__file__).resolve().with_name("run_example.py")
DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
OUTPUT_MARKER = "<!-- output of the example above -->"
STANDIN_PLACEHOLDER = "http://127.0.0.1:7860"
EXAMPLE_TIMEOUT = 120  # seconds; an example that hangs fails instead of hanging the suite
HIDDEN_ENV = (
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "HF_TOKEN_PATH",
    "HF_HOME",
    "QVQ_BASE_URL",
    "QVQ_PROTOCOL",
    "QVQ_API_KEY",
)
QVQ_COMMAND = re.compile(r"^(qvq|python -m qvq_sdk)\s|\|\s*qvq\s")


@dataclass
class Block:
    path: Path
    line: int  # of the opening fence, 1-based
    language: str
    code: str
    expected_output: Optional[str] = None

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"


def read_blocks(path: Path) -> List[Block]:
    """The fenced code blocks of a Markdown file (fences at the start of a line)."""
    blocks: List[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        if not line.startswith("```"):
            index += 1
            continue
        language = line[3:].strip().split(" ")[0]
        end = index + 1
        while end < len(lines) and not lines[end].startswith("```"):
            end += 1
        if end == len(lines):
            raise AssertionError(f"{path.relative_to(REPO)}:{index + 1}: a code fence is never closed")
        code = "\n".join(lines[index + 1 : end]) + "\n"
        previous = next((lines[i] for i in range(index - 1, -1, -1) if lines[i].strip()), "")
        if previous.strip() == OUTPUT_MARKER:
            python = [b for b in blocks if b.language == "python"]
            assert language == "text" and python, f"{path}:{index + 1}: an output block follows no python block"
            python[-1].expected_output = code
        else:
            blocks.append(Block(path, index + 1, language, code))
        index = end + 1
    return blocks


BLOCKS = [block for path in DOCUMENTS for block in read_blocks(path)]
PYTHON = [block for block in BLOCKS if block.language == "python"]


@dataclass
class Command:
    where: str
    text: str


def qvq_commands() -> List[Command]:
    commands = []
    for block in BLOCKS:
        if block.language not in ("bash", "sh", "console", "shell"):
            continue
        for offset, line in enumerate(block.code.splitlines(), start=1):
            for part in line.split("&&"):
                part = part.strip()
                if QVQ_COMMAND.search(part):
                    commands.append(Command(f"{block.where}+{offset}", part))
    return commands


COMMANDS = qvq_commands()


def uses_fake_space(block: Block) -> bool:
    return "FakeSpace" in block.code or "FakeOpenAI" in block.code


@pytest.fixture
def example_dir(tmp_path, example_images):
    """A fresh working directory with the example files, and an environment without tokens."""
    work = tmp_path / "work"
    work.mkdir()
    for name, source in example_images.items():
        shutil.copy(source, work / name)
    shutil.copytree(REPO / "examples", work / "examples")  # the shipped examples/cat.jpg
    home = tmp_path / "home"
    home.mkdir()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # `qvq` and `python` on PATH are this interpreter, with the package under test.
    for name, command in (("qvq", '"$PY" -m qvq_sdk'), ("python", '"$PY"')):
        shim = bin_dir / name
        shim.write_text(f'#!/bin/sh\nPY="{sys.executable}"\nexec {command} "$@"\n')
        shim.chmod(shim.stat().st_mode | stat.S_IXUSR)
    env = {key: value for key, value in os.environ.items() if key not in HIDDEN_ENV}
    env.update(
        HOME=str(home),
        PATH=os.pathsep.join([str(bin_dir), env.get("PATH", "")]),
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
        PYTHONUNBUFFERED="1",
    )
    for key in ("NO_PROXY", "no_proxy"):
        env[key] = ",".join(filter(None, [env.get(key), "127.0.0.1,localhost"]))
    return work, env


def run(args, work, env, where):
    try:
        result = subprocess.run(
            args, cwd=work, env=env, capture_output=True, text=True, timeout=EXAMPLE_TIMEOUT, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{where}: still running after {EXAMPLE_TIMEOUT} s; output so far:\n{exc.stdout}\n{exc.stderr}")
    assert result.returncode == 0, (
        f"{where} exited with {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    )
    return result


def _python_params():
    params = []
    for block in PYTHON:
        marks = () if uses_fake_space(block) else (pytest.mark.realserver,)
        params.append(pytest.param(block, id=block.where, marks=marks))
    return params


@pytest.mark.parametrize("block", _python_params())
def test_python_example(block, example_dir, request):
    work, env = example_dir
    if not uses_fake_space(block):
        env["QVQ_BASE_URL"] = request.getfixturevalue("standin").base_url
    (work / "example.py").write_text(block.code, encoding="utf-8")
    result = run([sys.executable, str(RUNNER), "example.py"], work, env, block.where)
    if block.expected_output is not None:
        assert result.stdout == block.expected_output, f"{block.where}: the output differs from the documented one"


@pytest.mark.realserver
@pytest.mark.parametrize("command", [pytest.param(c, id=c.where) for c in COMMANDS])
def test_qvq_command_example(command, example_dir, standin):
    work, env = example_dir
    env["QVQ_BASE_URL"] = standin.base_url
    text = command.text.replace(STANDIN_PLACEHOLDER, standin.base_url)
    result = run(["bash", "-o", "pipefail", "-c", text], work, env, command.where)
    assert "qvq: error" not in result.stderr


def test_examples_were_found():
    """A broken parser must not pass by finding nothing."""
    assert len(PYTHON) >= 10 and len(COMMANDS) >= 5
    assert any(block.path.name == "README.md" for block in PYTHON)
