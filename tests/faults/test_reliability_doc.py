"""docs/reliability.md names a test for every scenario: each test it names exists, and every
test of the fault, security, runtime and load suites is named there."""

from __future__ import annotations

import pathlib
import re

REPO = pathlib.Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "reliability.md"
COVERED = [
    *sorted((REPO / "tests" / "faults").glob("test_*.py")),
    REPO / "tests" / "http" / "test_http_security.py",
    REPO / "tests" / "http" / "test_http_runtime.py",
    REPO / "tests" / "realserver" / "test_load_and_leaks.py",
]
SELF = pathlib.Path(__file__).resolve()


def defined_tests(path):
    return set(re.findall(r"^def (test_\w+)\(", path.read_text(encoding="utf-8"), flags=re.M))


def named_in_doc():
    return set(re.findall(r"`(test_\w+)`", DOC.read_text(encoding="utf-8")))


def test_every_test_the_doc_names_exists():
    everywhere = set()
    for path in (REPO / "tests").rglob("test_*.py"):
        everywhere |= defined_tests(path)
    missing = sorted(named_in_doc() - everywhere)
    assert missing == [], "docs/reliability.md names tests that do not exist"


def test_every_reliability_test_is_in_the_doc():
    named = named_in_doc()
    unlisted = sorted(
        "%s::%s" % (path.name, name)
        for path in COVERED
        if path.resolve() != SELF
        for name in defined_tests(path)
        if name not in named
    )
    assert unlisted == [], "tests missing from docs/reliability.md"
