"""The files that the README's commands name exist in the checkout.

The README's first line, ``pip install . && qvq "What is in this picture?" -i examples/cat.jpg``,
must work on a fresh clone, run from the repository's root. So every file named by

- a command in a shell block (```` ```bash ````) of ``README.md`` or of ``docs/index.md``
  (the docs' quick start): an image after ``-i``/``--image`` of ``qvq``/``python -m qvq_sdk``,
  the script that ``python``/``bash`` runs, and any other argument that looks like a path
  (it has a ``/`` or a file extension such as ``.py`` or ``.jpg``);
- a string in their ``python`` blocks that ends in an image extension (``"examples/cat.jpg"``);
- a command in the examples of ``qvq --help`` (``qvq_sdk.cli.EXAMPLES``)

must exist, relative to the repository root. Not checked: URLs, ``-`` (stdin), absolute or
``~`` paths (not the repository's), globs, redirection targets (``> events.jsonl`` is
written, not read), the words of ``echo``/``printf``, and ``qvq``'s prompt.

tests/docs/test_docs_examples.py runs these examples against a stand-in; this module only
checks their files, in the checkout itself, so it needs no server.
"""

from __future__ import annotations

import ast
import os
import re
import shlex
from pathlib import Path
from typing import List, NamedTuple

import pytest

from qvq_sdk import cli

REPO = Path(__file__).resolve().parents[2]
DOCUMENTS = ["README.md", "docs/index.md"]
SHELL_LANGUAGES = {"bash", "sh", "shell", "console"}

OPERATORS = {"&&", "||", "|", ";", "&"}
REDIRECT = re.compile(r"^\d*(>>?|<|&>)(&\d+|&-)?$")  # > >> < 2> &> 2>&1; alone, the target follows
ATTACHED_REDIRECT = re.compile(r"^\d*(>>?|<|&>)")  # >out.txt, 2>/dev/null
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
URL = re.compile(r"^([a-z][a-z0-9+.-]*://|data:)", re.IGNORECASE)
IMAGE_OPTIONS = ("-i", "--image")
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp"}
FILE_EXTENSIONS = IMAGE_EXTENSIONS | {
    ".py", ".md", ".txt", ".json", ".jsonl", ".cfg", ".toml", ".ini", ".yml", ".yaml", ".sh", ".in",
}  # fmt: skip
PYTHONS = re.compile(r"^python(3(\.\d+)?)?$")
TEXT_COMMANDS = {"echo", "printf"}


class Named(NamedTuple):
    where: str  # "README.md:4"
    path: str  # as written, relative to the repository root
    kind: str  # "image", "script" or "argument"


# -- parsing ------------------------------------------------------------------------------------


def fenced_blocks(text: str, name: str):
    """(language, line number of the block's first line, lines) of each fenced block."""
    blocks, current = [], None
    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith("```"):
            if current is None:
                current = (line[3:].strip().split(" ")[0], number + 1, [])
            else:
                blocks.append(current)
                current = None
        elif current is not None:
            current[2].append(line)
    assert current is None, f"{name}: a code fence is never closed"
    return blocks


def shell_lines(lines: List[str], first: int):
    """(line number, text) of each shell line, ``\\``-continued lines joined."""
    pending, start = "", first
    for number, line in enumerate(lines, start=first):
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        yield start, pending + line
        pending = ""
    if pending:
        yield start, pending


def commands(line: str, where: str) -> List[List[str]]:
    """The simple commands of a shell line: its words, split at ``&&``, ``|``, ``;``, ``&``."""
    try:
        words = shlex.split(line, comments=True)
    except ValueError as exc:  # unbalanced quotes: a broken example, not one to skip
        pytest.fail(f"{where}: cannot parse the shell line {line!r}: {exc}")
    result: List[List[str]] = [[]]
    for word in words:
        if word in OPERATORS:
            result.append([])
        elif word.endswith((";", "&")) and not word.endswith("&&") and not REDIRECT.match(word):
            result[-1].append(word.rstrip(";&"))
            result.append([])
        else:
            result[-1].append(word)
    return [command for command in result if command]


def _without_redirections(words: List[str]) -> List[str]:
    kept, skip_next = [], False
    for word in words:
        if skip_next:
            skip_next = False
        elif REDIRECT.match(word):
            skip_next = not word.endswith(("&1", "&2", "&-"))
        elif not ATTACHED_REDIRECT.match(word):
            kept.append(word)
    return kept


def _looks_like_a_path(word: str) -> bool:
    if not word or word.startswith(("-", "/", "~")) or URL.match(word) or any(c in word for c in "*?$"):
        return False
    return "/" in word or Path(word).suffix.lower() in FILE_EXTENSIONS


def files_of_command(words: List[str]):
    """(path, kind) of the files one simple command reads."""
    words = _without_redirections(words)
    while words and ASSIGNMENT.match(words[0]):
        words = words[1:]
    if not words:
        return []
    program, args = os.path.basename(words[0]), words[1:]
    if program in TEXT_COMMANDS:
        return []
    is_qvq = program == "qvq" or (PYTHONS.match(program) and args[:2] == ["-m", "qvq_sdk"])
    if is_qvq:
        found = []
        for index, word in enumerate(args):
            value = None
            if word in IMAGE_OPTIONS and index + 1 < len(args):
                value = args[index + 1]
            elif word.startswith("--image="):
                value = word.split("=", 1)[1]
            if value is not None and value != "-" and not URL.match(value):
                found.append((value, "image"))
        return found
    found = []
    if PYTHONS.match(program) or program in ("bash", "sh"):
        while args and args[0].startswith("-"):
            if args[0] in ("-m", "-c"):  # a module or a command string: no script, the rest are its args
                args = args[2:]
                break
            args = args[2:] if args[0] in ("-W", "-X") else args[1:]  # these two take a value
        else:
            if args:
                found.append((args[0], "script"))
                args = args[1:]
    for word in args:
        word = re.sub(r"\[[^\]]*\]$", "", word)  # ".[test]": the project, with extras
        if _looks_like_a_path(word):
            found.append((word, "argument"))
    return found


def files_of_python(code: str, where: str) -> List[str]:
    """The image paths a python block names: string constants ending in an image extension."""
    try:
        tree = ast.parse(code)
    except SyntaxError as exc:
        pytest.fail(f"{where}: the python block does not parse: {exc}")
    found = []
    for node in ast.walk(tree):
        value = node.value if isinstance(node, ast.Constant) else getattr(node, "s", None)  # ast.Str on 3.7
        if isinstance(value, str) and Path(value).suffix.lower() in IMAGE_EXTENSIONS and not URL.match(value):
            found.append(value)
    return sorted(set(found))


def named_in_markdown(text: str, name: str) -> List[Named]:
    named = []
    for language, first, lines in fenced_blocks(text, name):
        if language in SHELL_LANGUAGES:
            for number, line in shell_lines(lines, first):
                where = f"{name}:{number}"
                for words in commands(line, where):
                    named += [Named(where, path, kind) for path, kind in files_of_command(words)]
        elif language == "python":
            where = f"{name}:{first}"
            named += [Named(where, path, "image") for path in files_of_python("\n".join(lines), where)]
    return named


def named_in_help(text: str) -> List[Named]:
    """The files that the ``examples:`` section of ``qvq --help`` names."""
    named, in_examples = [], False
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip() == "examples:":
            in_examples = True
        elif in_examples and not line.strip():
            break
        elif in_examples:
            where = f"qvq --help, examples line {number}"
            for words in commands(line.strip(), where):
                named += [Named(where, path, kind) for path, kind in files_of_command(words)]
    return named


def all_named() -> List[Named]:
    named = []
    for name in DOCUMENTS:
        named += named_in_markdown((REPO / name).read_text(encoding="utf-8"), name)
    return named + named_in_help(cli.EXAMPLES)


NAMED = all_named()


# -- the checks ---------------------------------------------------------------------------------


@pytest.mark.parametrize("named", [pytest.param(n, id=f"{n.where}: {n.path}") for n in NAMED])
def test_the_file_exists_in_the_checkout(named):
    path = REPO / named.path
    if named.kind == "argument":
        assert path.exists(), f"{named.where} names {named.path!r}, which is not in the repository"
    else:
        assert path.is_file(), f"{named.where} names the {named.kind} {named.path!r}, which is not in the repository"


def test_the_readme_names_its_image_and_the_standin_script():
    """A broken parser must not pass by finding nothing."""
    readme = {(n.path, n.kind) for n in NAMED if n.where.startswith("README.md:")}
    assert ("examples/cat.jpg", "image") in readme
    assert ("tests/realserver/servers.py", "script") in readme
    first_command = next(n for n in NAMED if n.where.startswith("README.md:"))
    assert first_command == Named("README.md:4", "examples/cat.jpg", "image")
    assert ("examples/cat.jpg", "image") in {(n.path, n.kind) for n in named_in_help(cli.EXAMPLES)}
    assert ("examples/cat.jpg", "image") in {(n.path, n.kind) for n in NAMED if n.where.startswith("docs/index.md:")}


def test_the_example_image_is_a_small_jpeg_with_its_licence():
    image = REPO / "examples" / "cat.jpg"
    data = image.read_bytes()
    assert data[:3] == b"\xff\xd8\xff" and 1_000 < len(data) < 50_000
    assert (REPO / "examples" / "draw_cat.py").is_file()
    assert "CC0" in (REPO / "examples" / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "line, expected",
    [
        (
            'pip install . && qvq "What is in this picture?" -i examples/cat.jpg   # chat',
            [("examples/cat.jpg", "image")],
        ),
        ('python -m qvq_sdk "hi/there.jpg" --image=a/b.png --protocol call', [("a/b.png", "image")]),
        ('qvq "hi" -i https://example.com/cat.jpg -i - --base-url http://127.0.0.1:7860', []),
        (
            "python tests/realserver/servers.py --gradio 5.9.1 --port 7860 &",
            [("tests/realserver/servers.py", "script")],
        ),
        ("python tests/realserver/servers.py --port 7860&", [("tests/realserver/servers.py", "script")]),
        ('pip install -e ".[test]" && python -m pytest tests/unit -q', [("tests/unit", "argument")]),
        ('qvq "x" -i cat.jpg --json > events.jsonl 2>&1', [("cat.jpg", "image")]),
        ('echo "Solve 2/3" | qvq - --system "Think."', []),
        ("QVQ_GRADIO_VERSIONS=6 python -W error run.py data.json", [("run.py", "script"), ("data.json", "argument")]),
        ("bash .ci/run", [(".ci/run", "script")]),
        ("mkdocs serve", []),
    ],
)
def test_what_the_parser_takes_for_a_file(line, expected):
    found = [file for words in commands(line, "test") for file in files_of_command(words)]
    assert found == expected


def test_a_missing_file_is_found():
    text = '# x\n\n```bash\npip install . && qvq "hi" -i examples/no-such-cat.jpg\n```\n'
    named = named_in_markdown(text, "README.md")
    assert named == [Named("README.md:4", "examples/no-such-cat.jpg", "image")]
    assert not (REPO / named[0].path).exists()
    python = '```python\nclient.chat("hi", images=["examples/no-such-cat.jpg", "https://x/y.png"])\n```\n'
    assert named_in_markdown(python, "README.md") == [Named("README.md:2", "examples/no-such-cat.jpg", "image")]
