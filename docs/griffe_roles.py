"""A griffe extension for the API reference: makes the docstrings' reST readable as Markdown.

qvq-sdk's docstrings use Sphinx roles (:class:`Done`, :meth:`events`,
:class:`~qvq_sdk.AppError`) and ``::`` before literal blocks. Markdown shows neither well,
so each role becomes a code span of its target's name, and a trailing ``::`` becomes ``:``
(the indented block after it already renders as code).
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:class|meth|func|mod|attr|exc|data|obj):`(~?)([^`]+)`")
_LITERAL_BLOCK = re.compile(r"::$", re.MULTILINE)


def _code_span(match: re.Match[str]) -> str:
    short, target = match.groups()
    return f"`{target.rsplit('.', 1)[-1] if short else target}`"


def markdown_docstring(text: str) -> str:
    return _LITERAL_BLOCK.sub(":", _ROLE.sub(_code_span, text))


class SphinxRolesToMarkdown(griffe.Extension):
    def on_instance(self, *, obj: Any, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = markdown_docstring(obj.docstring.value)
