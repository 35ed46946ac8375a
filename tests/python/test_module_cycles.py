"""The modules of src/python/ depend on each other one way: no cycles.

A cycle between two modules (`tensor` calls into `consumers`, which names
`tensor::PyTensor`) means neither can be read, changed or moved without the
other: the layer is one module spread over two files. This file reads every
module path that src/python/**/*.rs names (in `use` trees and inline:
`crate::python::x::y`, `super::x`, `self::x`; `#[cfg(test)]` items left out)
and fails on any cycle between two modules, or longer.

A module is a file: src/python/dlpack/exchange.rs is `dlpack::exchange`,
src/python/dlpack/mod.rs is `dlpack`. A path is charged to the longest module
it starts with (`crate::python::dlpack::exchange::table_of` is
`dlpack::exchange`), and a name a module re-exports (`pub(crate) use
import::try_import;` in arrow/mod.rs) is charged to the module it comes
from (`crate::python::arrow::try_import` is `arrow::import`), so a cycle
cannot hide behind a parent's re-export. A module's edges to its own ancestors and descendants
are not counted: a parent declares its children (`mod x;`), and a child
using what its parent defines is the ordinary shape of a Rust module tree,
not two files that know each other (so the root, src/python/mod.rs, which
declares every module, is never part of a cycle). What a path does not
show is not seen: a dependency through a trait impl (`framework` turning a
`Tensor` into a `dlbridge.Tensor` through `convert`'s `IntoPyObject`)
names no module.
"""

from __future__ import annotations

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
PYTHON = ROOT / "src" / "python"

# Cycles known and being removed elsewhere, each as a sorted pair of modules.
# A pair listed here that no longer forms a cycle fails too, so the list
# cannot outlive the cycle.
ALLOWED: set[tuple[str, str]] = set()

_COMMENT = re.compile(r"//[^\n]*|/\*.*?\*/", re.S)
_STRING = re.compile(r'r#*"(?:.|\n)*?"#*|"(?:\\.|[^"\\])*"')
_TEST_ITEM = re.compile(r"#\[cfg\(test\)\]\s*(?:#\[[^\]]*\]\s*)*(?:pub(?:\([a-z]+\))?\s+)?mod\s+\w+\s*\{")
_USE = re.compile(r"\buse\s+([^;]*);")
_REEXPORT = re.compile(r"\bpub(?:\s*\([^)]*\))?\s+use\s+([^;]*);")
_INLINE = re.compile(r"(?<![\w:])((?:crate|super|self)(?:\s*::\s*\w+)+)")


def _strip(text: str) -> str:
    """Comments, string literals and `#[cfg(test)] mod x { ... }` removed."""
    text = _STRING.sub('""', _COMMENT.sub("", text))
    while m := _TEST_ITEM.search(text):
        depth, i = 1, m.end()
        while depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        text = text[: m.start()] + text[i:]
    return text


def _expand(tree: str, keep_renames: bool = False) -> list[str]:
    """A `use` tree's paths: `a::{b, c::{d, e}}` -> a::b, a::c::d, a::c::e.

    Renames (`b as bee`) are dropped unless `keep_renames`, which keeps them
    as `a::b as bee` (what a re-export is known by).
    """
    # Renames go first (`b as bee`, `Thing as Other`): the path is what
    # counts, and once the whitespace is gone `b as bee` would read `basbee`.
    tree = re.sub(r"\s+as\s+(\w+)", r"@\1" if keep_renames else "", tree)
    tree = re.sub(r"\s+", "", tree)
    brace = tree.find("{")
    if brace < 0:
        return [tree.replace("@", " as ")]
    head, body = tree[:brace], tree[brace + 1 : tree.rindex("}")]
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(body):
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            parts.append(body[start:i])
            start = i + 1
    parts.append(body[start:])
    return [p for part in parts if part for p in _expand(head + part, keep_renames)]


def module_of(path: pathlib.Path, root: pathlib.Path) -> tuple[str, ...]:
    rel = path.relative_to(root).with_suffix("").parts
    return rel[:-1] if rel[-1] == "mod" else rel


def modules(root: pathlib.Path) -> dict[tuple[str, ...], str]:
    """Every module under `root` (a `src/python`), with its stripped source."""
    return {module_of(p, root): _strip(p.read_text()) for p in sorted(root.rglob("*.rs"))}


Module = tuple[str, ...]
Reexports = dict[Module, dict[str, Module]]


def reexports(sources: dict[Module, str]) -> Reexports:
    """Module -> {name it re-exports: the module the name comes from}.

    Only names re-exported from inside src/python count (a re-export of the
    core, `pub(crate) use crate::borrow::abi::BorrowApi;`, names no module
    here). A glob (`pub use x::*;`) names nothing and is charged to x.
    """
    known = set(sources)
    found: Reexports = {}
    for here, text in sources.items():
        for tree in _REEXPORT.findall(text):
            for renamed in _expand(tree, keep_renames=True):
                path, _, alias = renamed.partition(" as ")
                name = alias or path.rsplit("::", 1)[-1]
                there = _resolve(path, here, known, {})
                if there is not None and name != "*" and there != here:
                    found.setdefault(here, {})[name] = there
    return found


def _walk(path: str, here: Module, known: set[Module]) -> tuple[Module, list[str]] | None:
    """The longest module a path starts with and the segments after it, or
    None when the path leaves src/python."""
    segs = path.replace(" ", "").split("::")
    if segs[:2] == ["crate", "python"]:
        absolute: list[str] = []
        segs = segs[2:]
    elif segs[0] == "crate":
        return None
    else:
        absolute = list(here)
        while segs and segs[0] in ("self", "super"):
            if segs.pop(0) == "super":
                if not absolute:
                    return None
                absolute.pop()
    best, rest = tuple(absolute), segs
    for i, seg in enumerate(segs):
        absolute.append(seg)
        if tuple(absolute) not in known:
            break
        best, rest = tuple(absolute), segs[i + 1 :]
    return best, rest


def _resolve(
    path: str, here: Module, known: set[Module], through: Reexports, seen: frozenset[str] = frozenset()
) -> Module | None:
    """The module a path names, or None when it leaves src/python.

    A name the module re-exports is followed to the module it comes from
    (`seen` stops a pair of modules that re-export each other's name).
    """
    walked = _walk(path, here, known)
    if walked is None:
        return None
    best, rest = walked
    origin = through.get(best, {}).get(rest[0]) if rest else None
    key = "::".join(best + (rest[0],)) if rest else ""
    if origin is not None and key not in seen:
        # Re-resolve the rest of the path from where the name is defined.
        onward = "::".join(["crate", "python", *origin, *rest[1:]])
        return _resolve(onward, here, known, through, seen | {key}) or origin
    return best


def graph(root: pathlib.Path) -> dict[tuple[str, ...], set[tuple[str, ...]]]:
    """Module -> the modules it names (ancestors and descendants left out)."""
    sources = modules(root)
    known = set(sources)
    through = reexports(sources)
    edges: dict[tuple[str, ...], set[tuple[str, ...]]] = {m: set() for m in sources}
    for here, text in sources.items():
        paths = [p for tree in _USE.findall(text) for p in _expand(tree)]
        paths += _INLINE.findall(_USE.sub("", text))
        # A module imported by name (`use crate::python::arrow;`) and then
        # used through its re-export (`arrow::try_import(obj)`).
        for renamed in (p for tree in _USE.findall(text) for p in _expand(tree, keep_renames=True)):
            path, _, alias = renamed.partition(" as ")
            walked = _walk(path, here, known)
            if walked is None or walked[1] or walked[0] not in through:
                continue  # not a module (an item of one), or one that re-exports nothing
            module, local = walked[0], alias or path.rsplit("::", 1)[-1]
            for name in re.findall(rf"(?<![\w:]){re.escape(local)}\s*::\s*(\w+)", _USE.sub("", text)):
                paths.append("::".join(["crate", "python", *module, name]))
        for path in paths:
            there = _resolve(path, here, known, through)
            if there is None or there == here:
                continue
            if there[: len(here)] == here or here[: len(there)] == there:
                continue  # a parent and its descendant
            edges[here].add(there)
    return edges


def cycles(edges: dict[tuple[str, ...], set[tuple[str, ...]]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[tuple[str, ...], int] = {}
    low: dict[tuple[str, ...], int] = {}
    stack: list[tuple[str, ...]] = []
    found: list[list[str]] = []

    def visit(v: tuple[str, ...]) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append("::".join(w) or "python")
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return sorted(found)


def test_no_cycles_between_python_modules() -> None:
    found = cycles(graph(PYTHON))
    allowed = [sorted(pair) for pair in ALLOWED]
    unexpected = [c for c in found if c not in allowed]
    assert not unexpected, f"import cycles in src/python/: {unexpected}"
    stale = [pair for pair in allowed if pair not in found]
    assert not stale, f"ALLOWED lists cycles that are gone (remove them): {stale}"


def _tree(tmp_path: pathlib.Path, files: dict[str, str]) -> pathlib.Path:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("use crate::python::b::thing;", "use super::a::{x, y};"),
        ("fn f() { crate::python::b::g(); }", "use crate::python::{a, c};"),
        ("use super::{c, b::deep::{x}};", "use crate::python::a::Thing as Other;"),
        # A module renamed where it is imported is still that module.
        ("use crate::python::b as bee;", "use super::a::x;"),
        ("use crate::python::{c, b as bee};", "use super::{a as ay};"),
    ],
)
def test_the_check_finds_a_cycle(tmp_path: pathlib.Path, a: str, b: str) -> None:
    root = _tree(tmp_path, {"mod.rs": "mod a; mod b; mod c;", "a.rs": a, "b.rs": b, "c.rs": ""})
    assert cycles(graph(root)) == [["a", "b"]]


def test_the_check_ignores_comments_tests_and_the_module_tree(tmp_path: pathlib.Path) -> None:
    root = _tree(
        tmp_path,
        {
            "mod.rs": "mod a; mod b; fn f() { a::g(); b::h(); }",
            "a.rs": "// use crate::python::b;\nconst S: &str = \"crate::python::b\";\n"
            "#[cfg(test)]\nmod tests { use crate::python::b::x; fn t() { if x {} } }\n",
            "b.rs": "use crate::python::a;\nuse super::helper_in_root;",
            "b/c.rs": "use super::x;",
        },
    )
    assert cycles(graph(root)) == []
    # b's child reaches into b (its parent), b into the root: no edges.
    assert graph(root) == {(): set(), ("a",): set(), ("b",): {("a",)}, ("b", "c"): set()}


@pytest.mark.parametrize(
    ("parent", "user"),
    [
        # The name is used through the parent's re-export, in a `use` or inline.
        ("mod child; pub(crate) use child::thing;", "use crate::python::a::thing;"),
        ("mod child; pub(crate) use self::child::{other, thing};", "fn f() { super::a::thing(); }"),
        ("mod child; pub use child::thing as renamed;", "use crate::python::a::renamed;"),
    ],
)
def test_a_cycle_behind_a_reexport_is_charged_to_the_child(tmp_path: pathlib.Path, parent: str, user: str) -> None:
    """b uses a::child through a's re-export, and a::child uses b: a cycle."""
    root = _tree(
        tmp_path,
        {"mod.rs": "mod a; mod b;", "a/mod.rs": parent, "a/child.rs": "use crate::python::b::g;", "b.rs": user},
    )
    assert cycles(graph(root)) == [["a::child", "b"]]
    assert graph(root)[("b",)] == {("a", "child")}


@pytest.mark.parametrize("use", ["use crate::python::a;", "use super::a;", "use crate::python::a as ay;"])
def test_a_reexport_used_through_an_imported_module_is_charged_to_the_child(tmp_path: pathlib.Path, use: str) -> None:
    local = "ay" if " as " in use else "a"
    root = _tree(
        tmp_path,
        {
            "mod.rs": "mod a; mod b;",
            "a/mod.rs": "mod child; pub(crate) use child::thing;",
            "a/child.rs": "use crate::python::b::g;",
            "b.rs": f"{use}\nfn f() {{ {local}::thing(); }}",
        },
    )
    assert cycles(graph(root)) == [["a::child", "b"]]


def test_a_name_the_parent_defines_itself_stays_with_the_parent(tmp_path: pathlib.Path) -> None:
    root = _tree(
        tmp_path,
        {
            "mod.rs": "mod a; mod b;",
            "a/mod.rs": "mod child; pub(crate) use child::thing; pub(crate) use crate::core::X; fn own() {}",
            "a/child.rs": "",
            "b.rs": "use crate::python::a::{own, X};",
        },
    )
    assert graph(root)[("b",)] == {("a",)}
