"""The package's shape, as docs/architecture.md draws it: every module says what it is for,
no import cycles, and only the transport (and the test doubles of qvq_sdk.testing) knows
requests and urllib3."""

import ast
import pathlib

import pytest

import qvq_sdk

PACKAGE = pathlib.Path(qvq_sdk.__file__).resolve().parent  # the checkout's, or the installed wheel's
MODULES = sorted(p for p in PACKAGE.rglob("*.py"))
HTTP_LIBRARIES = ("requests", "urllib3")
#: Who may import requests or urllib3 at run time.
TRANSPORT = PACKAGE / "_transport"
TEST_DOUBLES = PACKAGE / "testing.py"


def name_of(path):
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def runtime_imports(path):
    """(module imported, line) for each import that runs when the module loads (not under
    ``if TYPE_CHECKING:``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.dump(node.test):
            skipped.update(id(child) for child in ast.walk(node))
    package = name_of(path) if path.name == "__init__.py" else name_of(path).rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
                if node.module is None:  # from . import x: x may be a module
                    for alias in node.names:
                        yield module + "." + alias.name, node.lineno
                yield module, node.lineno
            else:
                yield node.module, node.lineno


@pytest.mark.parametrize("path", MODULES, ids=lambda p: name_of(p))
def test_every_module_opens_with_a_docstring(path):
    assert ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))), f"{name_of(path)} has no docstring"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: name_of(p))
def test_only_the_transport_knows_requests_and_urllib3(path):
    if TRANSPORT in path.parents or path == TEST_DOUBLES:
        return
    for module, line in runtime_imports(path):
        assert module.split(".")[0] not in HTTP_LIBRARIES, f"{name_of(path)}:{line} imports {module}"


def test_the_package_is_found():
    assert len(MODULES) > 20


def test_no_import_cycles():
    names = {name_of(path): path for path in MODULES}
    graph = {
        name: {module for module, _ in runtime_imports(path) if module in names and module != name}
        for name, path in names.items()
    }
    cycles = []

    def visit(name, stack):
        if name in stack:
            cycles.append([*stack[stack.index(name) :], name])
            return
        for imported in sorted(graph[name]):
            if not imported.startswith(name + "."):  # a package importing its own modules
                visit(imported, [*stack, name])

    for name in sorted(graph):
        visit(name, [])
    assert cycles == []
