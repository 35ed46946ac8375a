"""The `_native.pyi` stub and `__init__.__all__` stay true to the built module."""

from __future__ import annotations

import ast
import inspect
import pathlib

import dlbridge
import dlbridge._native as native

STUB = pathlib.Path(dlbridge.__file__).with_name("_native.pyi")
TREE = ast.parse(STUB.read_text())

# Typing-only names in the stub, and the buffer protocol's `__buffer__`, which
# type checkers read from stubs but CPython 3.11 types do not define.
TYPING_ONLY = {"DeviceTuple"}
STUB_ONLY_METHODS = {"__buffer__"}


def stub_functions(body: list[ast.stmt]) -> dict[str, ast.FunctionDef]:
    return {node.name: node for node in body if isinstance(node, ast.FunctionDef)}


def stub_class(name: str) -> ast.ClassDef:
    (node,) = [n for n in TREE.body if isinstance(n, ast.ClassDef) and n.name == name]
    return node


def is_property(node: ast.FunctionDef) -> bool:
    return any(isinstance(d, ast.Name) and d.id == "property" for d in node.decorator_list)


def stub_parameters(node: ast.FunctionDef) -> list[tuple[str, inspect._ParameterKind, str | None]]:
    args = node.args
    positional = args.posonlyargs + args.args
    defaults = [None] * (len(positional) - len(args.defaults)) + [ast.unparse(d) for d in args.defaults]
    params = []
    for i, arg in enumerate(positional):
        kind = inspect.Parameter.POSITIONAL_ONLY if arg in args.posonlyargs else inspect.Parameter.POSITIONAL_OR_KEYWORD
        params.append((arg.arg, kind, defaults[i]))
    for arg, default in zip(args.kwonlyargs, args.kw_defaults):
        params.append((arg.arg, inspect.Parameter.KEYWORD_ONLY, None if default is None else ast.unparse(default)))
    return params


def runtime_parameters(func) -> list[tuple[str, inspect._ParameterKind, str | None]]:
    params = []
    for p in inspect.signature(func).parameters.values():
        default = None if p.default is inspect.Parameter.empty else repr(p.default)
        params.append((p.name, p.kind, default))
    return params


def comparable(params, *, method: bool):
    # `self` is positional-only at runtime (PyO3) and plain in stubs, so it is
    # left out; names, kinds (positional-only, as `from_dlpack(obj, /)`, or
    # keyword-only) and defaults are what callers depend on.
    return [(name, kind, default) for name, kind, default in params if not (method and name == "self")]


# Private functions the stub declares all the same (pickles name `_rebuild_tensor`).
PRIVATE_STUBBED = {"_rebuild_tensor"}


def test_module_names_match():
    stubbed = {n.name for n in TREE.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    stubbed |= {t.id for n in TREE.body if isinstance(n, ast.AnnAssign) for t in [n.target]}
    stubbed -= TYPING_ONLY
    runtime = {n for n in dir(native) if not n.startswith("_") or n == "__version__"}
    assert stubbed == runtime | PRIVATE_STUBBED
    assert set(dlbridge.__all__) == runtime


def test_function_signatures_match():
    for name, node in stub_functions(TREE.body).items():
        runtime = getattr(native, name)
        assert comparable(stub_parameters(node), method=False) == comparable(runtime_parameters(runtime), method=False), name


def test_tensor_members_match():
    cls = stub_class("Tensor")
    members = stub_functions(cls.body)
    public = {n for n in dir(native.Tensor) if not n.startswith("_")}
    dunders = {n for n in members if n.startswith("__")} - STUB_ONLY_METHODS
    assert {n for n in members if not n.startswith("_")} == public
    for name in dunders:
        assert hasattr(native.Tensor, name), name
    for name, node in members.items():
        if name in STUB_ONLY_METHODS:
            continue
        attribute = inspect.getattr_static(native.Tensor, name)
        if is_property(node):
            assert not callable(attribute) or hasattr(attribute, "__get__") and not inspect.isroutine(attribute), name
        else:
            assert inspect.isroutine(attribute), name
            if name != "__len__":
                assert comparable(stub_parameters(node), method=True) == comparable(runtime_parameters(attribute), method=True), name


def test_from_dlpack_takes_its_object_positionally_only():
    # The Array API's `from_dlpack(x, /, *, device=None, copy=None)`.
    (first, *rest) = inspect.signature(native.from_dlpack).parameters.values()
    assert first.kind is inspect.Parameter.POSITIONAL_ONLY
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in rest)


def test_py_typed_ships():
    assert STUB.with_name("py.typed").exists()


def test_test_hooks_are_in_no_public_namespace():
    # The hooks live in `_native._testing` only: not in `dlbridge`, not among
    # `_native`'s functions or in its `__all__`, not in the stub.
    hooks = {"fast_path_counts", "cuda_driver", "_fast_path_counts", "_cuda_driver"}
    assert not hooks & set(dir(dlbridge))
    assert not hooks & set(dir(native))
    assert "_testing" not in native.__all__ and not hasattr(dlbridge, "_testing")
    assert "_testing" not in STUB.read_text()
    assert sorted(n for n in dir(native._testing) if not n.startswith("__")) == ["cuda_driver", "fast_path_counts"]
