"""Every refusal site in the Rust sources maps to a row of docs/errors.md.

docs/errors.md claims to list every refusal dlbridge makes, and
test_error_matrix.py checks each row against the running code. This file
checks the other direction, statically: it scans src/**/*.rs for every place
that builds an error a user can see, extracts the message's literal text, and
requires a row of the doc to account for it.

What counts as a refusal site (outside `#[cfg(test)]` items and comments,
doc comments included):

* a constructor of the crate's `Error` (the ones src/error.rs defines, with
  the Python exception its `From<Error> for PyErr` maps each kind to), whose
  first argument is the refusal's `Cause` and whose second is the message;
* `<Something>Error::new_err(` / `<Something>Exception::new_err(` and
  `PyErr::new::<E, _>(` (PyTypeError, PyValueError, PyBufferError,
  PyMemoryError, PyOverflowError, PyImportError, PanicException, ...);
* a `String` error: `Err("...")`, `Err(format!(..))`, `map_err(|_| "...")`,
  `ok_or("...")` (the DLPack exchange API's allocator reports these through
  its SetError callback, which a consumer raises as RuntimeError).

The message of a site is the literal text of its argument: each `format!`'s
format string (placeholders `{...}` become wildcards, `{{`/`}}` braces, `\\`
line continuations folded), or each plain string literal. A site whose
argument has no literal text (a variable, a helper's return value) has no
message to check and must be in ALLOWLIST. A helper that builds the error
itself (`fn malformed(typestr, why) -> Error`) is a site like any other: its
`{why}` is a wildcard.

The mapping rule: a row *fits* a site's template when
  1. the row's exception is the site's exception (String errors: any), and
  2. the row's "message contains" fragment (at least MIN_FRAGMENT characters)
     can occur inside some message the template produces (a wildcard
     produces any text), with at least half of the fragment's characters,
     or at least ENOUGH_LITERAL of them, matched by the template's literal
     text rather than swallowed by its wildcards.
A row then vouches for the templates it fits *best* (the most of its
characters matched by literal text; ties all count), so a row written for
one refusal does not also cover a different message that merely shares a
few words with it (`negative ndim -1` is the DLPack spoke's, not the buffer
spoke's). Every template of every site must have a row that vouches for it,
or the site must be in ALLOWLIST with the reason. Rows from every table in
the doc count. (That each row's input really raises its exception with its
fragment is test_error_matrix.py's job.)
"""

from __future__ import annotations

import dataclasses
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
DOC = ROOT / "docs" / "errors.md"

MIN_FRAGMENT = 6  # a row whose fragment is shorter vouches for no site
ENOUGH_LITERAL = 20  # literal characters that identify a message whatever its wildcards hold

# Sites that need no row: keyed by (file relative to the repository root, a
# piece of the site's literal text, or "" for a site with no literal text),
# each with why no user can meet it as a refusal. An entry that matches no
# site fails test_allowlist_entries_are_live.
RUST_API = ("the Rust API's (Tensor::as_ndarray*/TypedTensor, src/ndarray.rs): no dlbridge Python call reaches it, "
            "only Rust code or a downstream extension's TypedTensor argument; Rust-tested in src/ndarray.rs")
BROKEN_EXPORTER = ("a C exporter that breaks PEP 3118; CPython's exporters, _testbuffer and the test "
                   "helpers (exporter.c refuses this input; lying_exporter.c has no such mode) cannot produce it")
NULL_CAPSULE = ("unreachable fallback: PyCapsule_New refuses a NULL pointer, and PyCapsule_GetPointer returns "
                "NULL only with an exception set, which is what propagates")
EXTENSION_RETURN = ("a framework-native return of the Rust extension API (dlbridge::Native), which no dlbridge "
                    "Python call makes; listed in docs/errors.md's extension section and tested through the "
                    "example extension in tests/python/test_extension_returns.py")
EXTENSION_CONSTRAINT = ("a constraint of the Rust extension API's argument types (dlbridge::constraints), which no "
                        "dlbridge Python call checks; listed in docs/errors.md's extension section and tested "
                        "through the example extension in tests/python/test_extension_constraints.py")
ALLOWLIST: dict[tuple[str, str], str] = {
    ("src/view/from_array.rs", "Tensor::from_shape_vec: shape "):
        "a constructor of the Rust API only (Tensor::from_shape_vec), which no dlbridge Python call reaches; "
        "Rust-tested in src/view/from_array.rs",
    ("src/python/framework/mod.rs", "tensor as a jax.Array: JAX runs without 64-bit types"): EXTENSION_RETURN,
    ("src/python/framework/numpy.rs", "numpy.ndarray has no dtype for"): EXTENSION_RETURN,
    ("src/python/framework/torch.rs", "cannot return read-only memory as a torch.Tensor"): EXTENSION_RETURN,
    ("src/python/framework/torch.rs", "with a negative stride as a torch.Tensor"): EXTENSION_RETURN,
    ("src/python/dlpack/exchange.rs", "a DLPack exchange table refused a tensor without an exception"):
        "unreachable with the tables dlbridge calls (its own and torch's), which set an exception on every failure",
    ("src/view/constraints.rs", "expected shape "): EXTENSION_CONSTRAINT,
    ("src/view/constraints.rs", "expected a C-contiguous tensor, got shape"): EXTENSION_CONSTRAINT,
    ("src/view/constraints.rs", "expected an F-contiguous tensor, got shape"): EXTENSION_CONSTRAINT,
    ("src/view/constraints.rs", "expected a writable tensor, got a read-only one"): EXTENSION_CONSTRAINT,
    ("src/view/constraints.rs", "expected a tensor on a "): EXTENSION_CONSTRAINT,
    ("src/layout.rs", "is larger than any element dlbridge can carry"):
        "unreachable from Python: every spoke checks the itemsize against a DType first, and the "
        "widest DType is a few megabytes; the check guards Layout's public constructors",
    ("src/descriptor.rs", "but a layout of"):
        "an internal invariant: every spoke builds its layout from the dtype's own itemsize; "
        "the check guards the public Descriptor::new against Rust callers",
    ("src/python/dlpack/dunder.rs", "panic in Tensor.__dlpack__"):
        "a Rust panic caught at the C boundary of __dlpack__ (PanicException): a bug, not a refusal; "
        "the message is the panic's payload, the literal only its fallback",
    ("src/python/dlpack/mod.rs", "expected a DLPack capsule, got"):
        "unreachable: every caller of consume_capsule checks is_dlpack_capsule (an exact capsule) first",
    ("src/python/dlpack/mod.rs", "is not a DLPack capsule (expected"):
        "unreachable: is_dlpack_capsule admits only the four DLPack names, all handled before this arm",
    ("src/python/dlpack/mod.rs", "DLPack capsule holds a NULL pointer"): NULL_CAPSULE,
    ("src/python/array_interface/structs.rs", "__array_struct__ capsule holds NULL"): NULL_CAPSULE,
    ("src/protocol/dlpack.rs", "cannot build a DLPack tensor: "):
        "an internal invariant: dlpark refusing a header dlbridge has just built with dlpark's own version",
    ("src/python/convert.rs", "publishes no usable DLPack exchange table"):
        "ImportError of the Rust API's Tensor -> Python conversion, only with a dlbridge._native from "
        "another build (a broken install), not a refusal of any input",
    ("src/protocol/buffer.rs", "buffer has a negative len "): BROKEN_EXPORTER,
    ("src/protocol/buffer.rs", "buffer has a negative ndim "): BROKEN_EXPORTER,
    ("src/view/raw.rs", "expected dtype "): RUST_API,
    ("src/view/raw.rs", "-d tensor, got a "): RUST_API,
    ("src/view/raw.rs", "tensor of shape "): RUST_API,
    ("src/view/raw.rs", " is not aligned for "): RUST_API,
    ("src/view/raw.rs", "not a valid bool tensor"): RUST_API,
    ("src/view/raw.rs", "cannot view a readonly tensor"): RUST_API,
    ("src/view/raw.rs", "mutably: two indices may reach one element"): RUST_API,
    ("src/view/raw.rs", "cannot prove exclusive access"): RUST_API,
    ("src/view/raw.rs", "other view(s) or export(s) share this memory"): RUST_API,
    ("src/cuda/driver.rs", " under Miri"):
        "only under Miri (make miri), which runs the Rust core and no Python; the refusal it leads to "
        "is cai-no-driver's",
}


# --------------------------------------------------------------- the lexer --

@dataclasses.dataclass
class Literal:
    start: int          # offset of the literal's first character (prefix included)
    end: int            # offset just past its closing delimiter
    value: str          # the decoded text
    raw: bool


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "\\": "\\", "'": "'", '"': '"'}


def _decode(body: str) -> str:
    out, i = [], 0
    while i < len(body):
        c = body[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        nxt = body[i + 1]
        if nxt == "\n":  # line continuation: the newline and the next line's leading whitespace go
            i += 2
            while i < len(body) and body[i] in " \t\r\n":
                i += 1
        elif nxt == "x":
            out.append(chr(int(body[i + 2:i + 4], 16)))
            i += 4
        elif nxt == "u":
            close = body.index("}", i)
            out.append(chr(int(body[i + 3:close], 16)))
            i = close + 1
        else:
            out.append(_ESCAPES[nxt])
            i += 2
    return "".join(out)


def lex(src: str) -> tuple[str, list[Literal]]:
    """The source with comments and literal contents blanked (same offsets,
    newlines kept; a literal keeps its quotes), and the literals."""
    shape = list(src)
    literals: list[Literal] = []
    n, i = len(src), 0

    def blank(a: int, b: int) -> None:
        for k in range(a, b):
            if shape[k] != "\n":
                shape[k] = " "

    while i < n:
        c = src[i]
        ident_before = i > 0 and (src[i - 1].isalnum() or src[i - 1] == "_")
        if src.startswith("//", i):
            end = src.find("\n", i)
            end = n if end < 0 else end
            blank(i, end)
            i = end
        elif src.startswith("/*", i):
            depth, k = 1, i + 2
            while depth and k < n:
                if src.startswith("/*", k):
                    depth, k = depth + 1, k + 2
                elif src.startswith("*/", k):
                    depth, k = depth - 1, k + 2
                else:
                    k += 1
            blank(i, k)
            i = k
        elif not ident_before and (m := re.compile(r'[bc]?r(#*)"').match(src, i)):
            close = src.index('"' + m.group(1), m.end())
            end = close + 1 + len(m.group(1))
            literals.append(Literal(i, end, src[m.end():close], True))
            blank(m.end(), close)
            i = end
        elif c == '"' or (not ident_before and c in "bc" and src.startswith('"', i + 1)):
            q = i if c == '"' else i + 1
            k = q + 1
            while src[k] != '"':
                k += 2 if src[k] == "\\" else 1
            literals.append(Literal(i, k + 1, _decode(src[q + 1:k]), False))
            blank(q + 1, k)
            i = k + 1
        elif c == "'":
            if src.startswith("\\", i + 1):  # '\n', '\'', '\u{..}'
                end = src.index("'", i + 3) + 1
            elif i + 2 < n and src[i + 2] == "'":  # 'x'
                end = i + 3
            else:  # a lifetime or a label
                i += 1
                continue
            blank(i + 1, end - 1)
            i = end
        else:
            i += 1
    return "".join(shape), literals


def _match_close(shape: str, open_at: int) -> int:
    """Offset of the bracket closing the one at open_at (literals are blanked)."""
    pairs = {"(": ")", "[": "]", "{": "}"}
    stack = []
    for k in range(open_at, len(shape)):
        ch = shape[k]
        if ch in pairs:
            stack.append(pairs[ch])
        elif ch in ")]}":
            assert stack and stack[-1] == ch, f"unbalanced {ch!r} at offset {k}"
            stack.pop()
            if not stack:
                return k
    raise AssertionError(f"unclosed bracket at offset {open_at}")


_CFG_TEST = re.compile(r"#\s*\[\s*cfg\s*\(\s*test\s*\)\s*\]")


def drop_cfg_test(shape: str, literals: list[Literal]) -> tuple[str, list[Literal]]:
    """Blanks every `#[cfg(test)]` item (a module, a function, a use) and its literals."""
    while m := _CFG_TEST.search(shape):
        k = m.end()
        while True:  # the item's own further attributes
            a = re.compile(r"\s*#\s*\[").match(shape, k)
            if not a:
                break
            k = _match_close(shape, a.end() - 1) + 1
        brace, semi = shape.find("{", k), shape.find(";", k)
        end = semi + 1 if semi >= 0 and (brace < 0 or semi < brace) else _match_close(shape, brace) + 1
        shape = shape[:m.start()] + re.sub(r"[^\n]", " ", shape[m.start():end]) + shape[end:]
        literals = [lit for lit in literals if not m.start() <= lit.start < end]
    return shape, literals


# ---------------------------------------------------------- the templates --

WILD = None  # a `{...}` placeholder in a template


def format_template(text: str) -> tuple:
    """A format string's parts: literal text and WILD for each placeholder."""
    parts: list = []
    for piece in re.split(r"(\{\{|\}\}|\{[^{}]*\})", text):
        if piece in ("{{", "}}"):
            piece = piece[0]
        elif piece.startswith("{"):
            parts.append(WILD)
            continue
        if piece:
            if parts and isinstance(parts[-1], str):
                parts[-1] += piece
            else:
                parts.append(piece)
    return tuple(parts)


def shown(template: tuple) -> str:
    return "".join("{…}" if p is WILD else p for p in template)


def literal_coverage(fragment: str, template: tuple) -> int:
    """How many of the fragment's characters, at best, come from the template's
    literal text, over all ways of placing the fragment inside a message the
    template can produce (a wildcard produces any text); -1 if none can."""
    tokens: list = []
    for part in template:
        if part is WILD:
            if not tokens or tokens[-1] is not WILD:
                tokens.append(WILD)
        else:
            tokens.extend(part)
    t_len = len(tokens)
    none = -1

    def close(best: list[int]) -> list[int]:  # a wildcard may produce nothing
        for t in range(t_len):
            if tokens[t] is WILD and best[t] > best[t + 1]:
                best[t + 1] = best[t]
        return best

    best = close([0] * (t_len + 1))  # the fragment may start anywhere
    for ch in fragment:
        new = [none] * (t_len + 1)
        for t in range(t_len):
            if best[t] == none:
                continue
            if tokens[t] is WILD:
                new[t] = max(new[t], best[t])
            elif tokens[t] == ch:
                new[t + 1] = max(new[t + 1], best[t] + 1)
        best = close(new)
    return max(best)


def fragment_fits(fragment: str, template: tuple) -> bool:
    covered = literal_coverage(fragment, template)
    return len(fragment) >= MIN_FRAGMENT and (2 * covered >= len(fragment) or covered >= ENOUGH_LITERAL)


# --------------------------------------------------------------- the sites --

@dataclasses.dataclass
class Site:
    path: str           # relative to the repository root
    line: int
    exception: str | None  # None: a String error (SetError; any row class)
    templates: list[tuple]
    code: str           # the site's first line, for messages
    # An Error constructor's first argument (`Cause::Layout`, or an expression
    # that computes the cause); "" for a constructor given a single argument;
    # None for the other kinds of site.
    cause: str | None = None

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


def error_constructors() -> dict[str, str]:
    """`Error::<constructor>` -> the Python exception name, read from src/error.rs
    (the constructors) and src/python/errors.rs (the one mapping to Python)."""
    text, _ = lex((SRC / "error.rs").read_text())
    mapping, _ = lex((SRC / "python" / "errors.rs").read_text())
    kinds = dict(re.findall(r"ErrorKind::(\w+)\s*=>\s*(?:[\w:]*::)?Py(\w+)::new_err", mapping))
    found = {}
    for m in re.finditer(r"pub\s+fn\s+(\w+)\s*\([^)]*\)\s*->\s*Self\s*\{", text):
        body = text[m.end():_match_close(text, m.end() - 1)]
        kind = re.search(r"ErrorKind::(\w+)", body)
        if kind:
            found[m.group(1)] = kinds[kind.group(1)]
    return found


def cause_variants() -> set[str]:
    """The variants of `pub enum Cause` in src/error.rs."""
    text, _ = lex((SRC / "error.rs").read_text())
    m = re.search(r"pub\s+enum\s+Cause\s*\{", text)
    assert m, "src/error.rs declares no `pub enum Cause`"
    body = text[m.end():_match_close(text, m.end() - 1)]
    body = re.sub(r"#\s*\[[^\]]*\]", "", body)  # attributes on variants
    return set(re.findall(r"(\w+)\s*(?:,|$)", body))


def first_argument(shape: str, open_at: int, close_at: int) -> tuple[str, int]:
    """The text of the first of several arguments between the parentheses at
    open_at and close_at (literals blanked) and the offset of the comma after
    it; ("", open_at) for a single argument."""
    depth = 0
    for k in range(open_at + 1, close_at):
        ch = shape[k]
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            return " ".join(shape[open_at + 1:k].split()), k
    return "", open_at


def site_patterns() -> list[tuple[re.Pattern, object]]:
    """(pattern ending at the opening parenthesis of the message argument
    (of the cause and the message, for an Error constructor),
    exception: a name, or a group index naming it, or None for String errors)."""
    constructors = "|".join(map(re.escape, error_constructors()))
    return [
        (re.compile(rf"(?<![\w:])(?:\w+::)*Error::({constructors})\s*\("), "ctor"),
        (re.compile(r"\b(\w*(?:Error|Exception|Warning))::new_err\s*\("), 1),
        (re.compile(r"\bPyErr::new::<\s*(?:[\w:]*::)?(\w+)\s*,\s*_\s*>\s*\("), 1),
        (re.compile(r"\bErr\s*\((?=\s*(?:\"|format!))"), None),
        (re.compile(r"\bmap_err\s*\((?=\s*(?:move\s*)?\|[^|]*\|\s*(?:\"|format!))"), None),
        (re.compile(r"\bok_or\s*\((?=\s*(?:\"|format!))"), None),
        (re.compile(r"\bok_or_else\s*\((?=\s*(?:move\s*)?\|\|\s*(?:\"|format!))"), None),
    ]


def templates_in(shape: str, literals: list[Literal], start: int, end: int) -> list[tuple]:
    """The message templates of the argument text shape[start:end]."""
    inside = [lit for lit in literals if start <= lit.start < end]
    formats = []  # (open paren, close paren) of each format!-like macro
    for m in re.finditer(r"\b(?:format|format_args)!\s*\(", shape[start:end]):
        open_at = start + m.end() - 1
        formats.append((open_at, _match_close(shape, open_at)))
    result = []
    for lit in inside:
        enclosing = [f for f in formats if f[0] < lit.start < f[1]]
        if any(shape[open_at + 1:lit.start].strip() for open_at, _ in enclosing):
            continue  # an argument of a format!, not its format string
        if enclosing:
            result.append(format_template(lit.value))
        else:
            result.append((lit.value,))
    return result


def scan(path: str, src: str) -> list[Site]:
    shape, literals = lex(src)
    shape, literals = drop_cfg_test(shape, literals)
    ctors = error_constructors()
    sites = []
    for pattern, exception in site_patterns():
        for m in pattern.finditer(shape):
            open_at = m.end() - 1  # every pattern ends at the argument's opening parenthesis
            close_at = _match_close(shape, open_at)
            cause, message_at = None, open_at
            if exception == "ctor":
                name = ctors[m.group(1)]
                cause, message_at = first_argument(shape, open_at, close_at)  # the message follows the cause
            elif isinstance(exception, int):
                name = m.group(exception)
                name = name[2:] if name.startswith("Py") else name
            else:
                name = None
            line = shape.count("\n", 0, m.start()) + 1
            sites.append(Site(path, line, name, templates_in(shape, literals, message_at, close_at),
                              src.splitlines()[line - 1].strip(), cause))
    sites.sort(key=lambda s: (s.path, s.line))
    return sites


def scan_tree() -> list[Site]:
    sites = []
    for file in sorted(SRC.rglob("*.rs")):
        rel = file.relative_to(ROOT).as_posix()
        if rel in ("src/error.rs", "src/python/errors.rs"):  # the constructors and the one mapping
            # Defines the constructors and the one Error -> PyErr mapping:
            # neither builds a message of its own.
            continue
        sites.extend(scan(rel, file.read_text()))
    return sites


# ---------------------------------------------------------------- the doc --

@dataclasses.dataclass
class Row:
    id: str
    exception: str
    fragment: str


def doc_rows(text: str) -> dict[str, Row]:
    """The rows of every table in the doc that has id, exception and
    "message contains" columns (found by their header names)."""
    rows: dict[str, Row] = {}
    header: list[str] | None = None
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("|"):
            header = None
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip("|"))]
        if header is None:
            header = [c.lower() for c in cells]
            continue
        if all(re.fullmatch(r":?-+:?", c) for c in cells):
            continue
        if not {"id", "exception", "message contains"} <= set(header):
            continue
        cell = dict(zip(header, cells))
        row_id = cell["id"].strip("`")
        assert row_id not in rows, f"docs/errors.md: duplicate row id {row_id!r}"
        fragment = cell["message contains"].strip("`").replace("\\|", "|")
        rows[row_id] = Row(row_id, cell["exception"].strip("`"), fragment)
    return rows


def vouchers(sites: list[Site], rows: dict[str, Row]) -> dict[tuple[int, int], list[str]]:
    """(site index, template index) -> the ids of the rows that vouch for it:
    the rows that fit it, each only where it fits best."""
    fits: dict[tuple[int, int], dict[str, int]] = {}
    best: dict[str, int] = {}
    for i, site in enumerate(sites):
        for j, template in enumerate(site.templates):
            fits[i, j] = {}
            for row in rows.values():
                if site.exception in (None, row.exception) and fragment_fits(row.fragment, template):
                    covered = literal_coverage(row.fragment, template)
                    fits[i, j][row.id] = covered
                    best[row.id] = max(best.get(row.id, 0), covered)
    return {key: [r for r, covered in found.items() if covered == best[r]] for key, found in fits.items()}


def allowlisted(site: Site) -> tuple[str, str] | None:
    """The ALLOWLIST entry that covers the site, if any."""
    for path, piece in ALLOWLIST:
        if path == site.path and (any(piece in shown(t) for t in site.templates) if piece else not site.templates):
            return path, piece
    return None


def unmapped(sites: list[Site], rows: dict[str, Row]) -> list[str]:
    """One line per site (or per message of a site) that no row vouches for."""
    vouched = vouchers(sites, rows)
    problems = []
    for i, site in enumerate(sites):
        if allowlisted(site):
            continue
        if not site.templates:
            problems.append(f"{site.where}: no literal message to check ({site.code}); "
                            "give it a literal, or allowlist it with the reason")
            continue
        for j, template in enumerate(site.templates):
            if vouched[i, j]:
                continue
            other = [r.id for r in rows.values() if fragment_fits(r.fragment, template)]
            elsewhere = [r.id for r in rows.values() if site.exception in (None, r.exception)
                         and fragment_fits(r.fragment, template)]
            hint = (f" (rows {elsewhere} fit it, but fit another message better)" if elsewhere else
                    f" (rows {other} match the text but not the exception)" if other else "")
            problems.append(f"{site.where}: {site.exception or 'String error'} "
                            f"{shown(template)!r} has no row in docs/errors.md{hint}")
    return problems


SITES = scan_tree()
ROWS = doc_rows(DOC.read_text())


# --------------------------------------------------------------- the tests --

def test_every_site_maps_to_a_row():
    problems = unmapped(SITES, ROWS)
    assert not problems, "refusal sites without a row in docs/errors.md:\n" + "\n".join(problems)


def test_allowlist_entries_each_cover_one_site():
    # An entry matching no site is stale; one matching several would let a new
    # site in the same file through unseen: make its piece specific.
    covered = [allowlisted(site) for site in SITES]
    wrong = {entry: covered.count(entry) for entry in ALLOWLIST if covered.count(entry) != 1}
    assert not wrong, f"allowlist entries not matching exactly one site (entry: sites): {wrong}"
    assert all(len(reason) > 20 for reason in ALLOWLIST.values()), "every entry needs its reason"


def test_every_error_site_states_a_cause():
    # Each constructor takes the cause first: a constructor site read with a
    # single argument has none (or the scanner lost track of the arguments).
    constructed = [site for site in SITES if site.cause is not None]
    assert len(constructed) > 100, len(constructed)
    missing = [site.where for site in constructed if not site.cause]
    assert not missing, f"Error constructor sites without a cause argument: {missing}"
    # Every declared cause is stated by some site, and every stated one is
    # declared: a variant no refusal produces is a promise nothing keeps.
    named = {m.group(1) for site in constructed if (m := re.fullmatch(r"(?:\w+::)*Cause::(\w+)", site.cause))}
    variants = cause_variants()
    assert named == variants, {"declared, never stated": variants - named, "stated, not declared": named - variants}


def test_scan_finds_every_kind_of_site():
    # A floor, so a scanner that silently stops finding sites fails.
    assert len(SITES) > 100, len(SITES)
    kinds = {site.exception for site in SITES}
    assert {"TypeError", "ValueError", "BufferError"} <= kinds, kinds
    assert {"type_error": "TypeError", "value": "ValueError", "buffer": "BufferError"}.items() <= error_constructors().items()


# ------------------------------------------------- the scanner, on its own --

SAMPLE = r'''
//! Error::buffer(Cause::Layout, "in a module doc comment")
use pyo3::exceptions::PyValueError;

/// Error::value(Cause::Layout, "in a doc comment")
fn one(x: usize) -> Result<()> {
    let c = '"'; let q = '\''; let l: &'static str = "x";  // Error::buffer(Cause::Pointer, "in a comment")
    if x == 1 {
        return Err(Error::buffer(Cause::Readonly, "something new"));
    }
    Err(Error::value(cause_of(x, "a, b"), format!(
        "the {{braced}} extent {x} of {:?} \
         exceeds {limit}",
        shape.iter().map(|s| format!("{s}")).collect::<Vec<_>>().join(", ")
    )))
}

fn two() -> PyErr {
    /* Error::buffer(Cause::Pointer, "in a block comment") */
    let _ = PyErr::new::<PyMemoryError, _>("generic");
    pyo3::exceptions::PyOverflowError::new_err(r#"a "raw" message"#)
}

fn three(p: &T) -> Result<(), String> {
    let n = usize::try_from(p.n).map_err(|_| "negative count".to_string())?;
    Err(format!("bad {n}"))
}

#[cfg(test)]
mod tests {
    fn t() { let _ = Error::buffer(Cause::Layout, "in a test module"); }
}

#[cfg(test)]
#[allow(dead_code)]
fn helper() -> Error { crate::error::Error::value(Cause::Layout, "in a test function") }

fn four() -> Error { crate::error::Error::type_error(concat_not_a_literal()) }
'''


def test_scanner_on_a_sample():
    sites = scan("src/sample.rs", SAMPLE)
    found = [(s.line, s.exception, s.cause, [shown(t) for t in s.templates]) for s in sites]
    assert found == [
        (9, "BufferError", "Cause::Readonly", ["something new"]),
        (11, "ValueError", 'cause_of(x, " ")', ["the {braced} extent {…} of {…} exceeds {…}"]),
        (20, "MemoryError", None, ["generic"]),
        (21, "OverflowError", None, ['a "raw" message']),
        (25, None, None, ["negative count"]),
        (26, None, None, ["bad {…}"]),
        (38, "TypeError", "", []),  # a single argument: no cause (test_every_error_site_states_a_cause)
    ], found


def test_first_argument_and_the_declared_causes():
    shape, _ = lex('f(Cause::A, "x, y")  g("only")  h(pick(a, b), [c, d])')
    opens = [m.end() - 1 for m in re.finditer(r"\w\(", shape)]
    got = [first_argument(shape, k, _match_close(shape, k))[0] for k in opens]
    assert got == ["Cause::A", "", "pick(a, b)", "a"], got
    assert {"Layout", "Pointer", "DType", "Argument", "Version"} <= cause_variants()


def test_a_new_site_without_a_row_fails_naming_file_and_line():
    rows = doc_rows("| id | input | exception | message contains |\n| --- | --- | --- | --- |\n"
                    "| big | x | ValueError | extent 7 of [2, 3] exceeds 4 |\n"
                    "| mem | x | MemoryError | generic |\n"
                    "| raw | x | OverflowError | \"raw\" message |\n"
                    "| neg | x | RuntimeError | negative count |\n"
                    "| bad | x | RuntimeError | bad 42 |\n")
    problems = unmapped(scan("src/sample.rs", SAMPLE), rows)
    assert problems == [
        "src/sample.rs:9: BufferError 'something new' has no row in docs/errors.md",
        "src/sample.rs:38: no literal message to check "
        "(fn four() -> Error { crate::error::Error::type_error(concat_not_a_literal()) }); "
        "give it a literal, or allowlist it with the reason",
    ], problems


def test_exception_must_agree():
    rows = doc_rows("| id | input | exception | message contains |\n| --- | --- | --- | --- |\n"
                    "| new | x | ValueError | something new |\n")
    site = scan("src/sample.rs", SAMPLE)[0]
    assert unmapped([site], rows) == [
        "src/sample.rs:9: BufferError 'something new' has no row in docs/errors.md "
        "(rows ['new'] match the text but not the exception)"]


def test_a_row_vouches_only_where_it_fits_best():
    sites = scan("src/sample.rs", '''
        fn a(n: i32) -> Error { Error::value(format!("DLPack tensor has a negative ndim {n}")) }
        fn b(what: &str, n: i32) -> Error { Error::value(format!("{what} has a negative ndim {n}")) }
    ''')
    header = "| id | input | exception | message contains |\n| --- | --- | --- | --- |\n"
    specific = doc_rows(header + "| dl | x | ValueError | DLPack tensor has a negative ndim -1 |\n")
    assert unmapped(sites, specific) == [
        "src/sample.rs:3: ValueError '{…} has a negative ndim {…}' has no row in docs/errors.md "
        "(rows ['dl'] fit it, but fit another message better)"]
    generic = doc_rows(header + "| any | x | ValueError | negative ndim -1 |\n")
    assert unmapped(sites, generic) == []  # a tie: the fragment says no more about one than the other


@pytest.mark.parametrize(("fragment", "template", "fits"), [
    ("negative extent -3 on axis 1", "negative extent {n} on axis {axis}", True),
    ('malformed typestr "<f3"', "malformed typestr {typestr:?}: {why}", True),
    ("non-native byte order", "unsupported PEP 3118 format {format:?}: {why}", False),  # all wildcard
    ("extent 7 of [2, 3] exceeds", "the extent {x} of {:?} exceeds {limit}", True),
    ("something new", "something old", False),
    ("some text at all", "{e}", False),  # a wildcard alone vouches for nothing
    ("version", "unsupported DLPack version {major}.{minor}", True),
    ("ver", "unsupported DLPack version {major}.{minor}", False),  # shorter than MIN_FRAGMENT
    ("cannot import DLPack tensor: incompatible DLPack major version", "cannot import DLPack tensor: {e}", True),
    ("shape extent on axis 0 18446744073709551616 is out of range", "{} {value} is out of range (it must", False),
    ("the {braced}", "the {{braced}} extent", True),
])
def test_fragment_fits(fragment, template, fits):
    assert fragment_fits(fragment, format_template(template)) is fits


def test_doc_rows_from_every_table():
    text = ("| id | input | exception | message contains |\n| --- | --- | --- | --- |\n"
            "| a-row | x | TypeError | `a \\| b` |\n\nprose\n\n## Fidelity refusals\n\n"
            "| id | exception | message contains | input |\n|---|---|---|---|\n"
            "| b-row | ValueError | later | y |\n")
    assert doc_rows(text) == {"a-row": Row("a-row", "TypeError", "a | b"),
                              "b-row": Row("b-row", "ValueError", "later")}
