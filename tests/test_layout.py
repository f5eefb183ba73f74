"""The folders keep their shape: what answers a question imports none of the tools, and nothing imports the UI."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from retrieval.settings import ROOT

PACKAGE = ROOT / "retrieval"
SERVING = PACKAGE / "serving"
MEASURE = PACKAGE / "measure"
# What serving must never reach: the tools that measure it, the code that builds the model and the index,
# the store, the edges (command line, HTTP) and the tests. The tests' own helper modules are imported
# by bare name (conftest puts tests/ on the path), so they are named too.
NOT_FROM_SERVING = ("retrieval.measure", "retrieval.build", "retrieval.store", "retrieval.api", "retrieval.cli",
                    "retrieval.loading", "tests", "conftest", "browser_helpers", "timing")


def imported(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside a function."""
    return imported_from_source(path.read_text(encoding="utf-8"))


def imported_from_source(source: str) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            out.add("." * node.level + (node.module or ""))
    return out


def under(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def test_the_import_reader_sees_every_form():
    assert imported_from_source("import a.b\nfrom c import d\ndef f():\n    from .e import g") == {"a.b", "c", ".e"}


@pytest.mark.parametrize("path", sorted(SERVING.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_serving_imports_none_of_the_tools_nor_the_tests(path):
    assert not any(m.startswith(".") for m in imported(path)), "serving imports by absolute name only"
    assert not {m for m in imported(path) if under(m, NOT_FROM_SERVING)}


# measure/ drives the page from outside, as a browser does: it may read Streamlit's wire format.
@pytest.mark.parametrize("path", sorted(p for p in PACKAGE.rglob("*.py") if MEASURE not in p.parents),
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_nothing_in_retrieval_imports_streamlit(path):
    assert not {m for m in imported(path) if under(m, ("streamlit",))}


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_nothing_in_retrieval_imports_the_tests(path):
    assert not {m for m in imported(path) if under(m, ("tests", "conftest", "browser_helpers", "timing"))}
