"""Writes the Python API reference (docs/python-api.md) from the type stubs, which
stubtest checks against the built module, so the reference cannot drift either:
test_api_doc.py fails when the checked-in file differs from what this renders.

Run from pps-python/: ``python3 -m tests.api_doc > ../docs/python-api.md``.
"""

from __future__ import annotations

import ast
from pathlib import Path

STUB = Path(__file__).resolve().parents[1] / "python" / "pps" / "_pps.pyi"

HEADER = """# The Python API of `pps`

Generated from the type stubs (`pps-python/python/pps/_pps.pyi`, checked against the
built module by stubtest) by `pps-python/tests/api_doc.py`; a test fails when this file
is out of date. Every name is also documented in the module itself: `help(pps.Scanner)`.
How to stop `serve()`, the store's lock and threads: the README's "From Python".

Every blocking method releases the interpreter; each `*_async` twin returns a coroutine.
Every error is a `pps.PpsError` subclass (see Exceptions).
"""


def _signature(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
    args = ast.unparse(fn.args)
    ret = f" -> {ast.unparse(fn.returns)}" if fn.returns else ""
    return f"{fn.name}({args}){ret}"


def _is_property(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    return any(ast.unparse(d) == "property" for d in fn.decorator_list)


def render(stub: Path = STUB) -> str:
    tree = ast.parse(stub.read_text(encoding="utf-8"))
    # The stub's private aliases (`_Update = Literal[...]`), written out where used.
    aliases = {
        node.targets[0].id: ast.unparse(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign)
        and isinstance(node.targets[0], ast.Name)
        and node.targets[0].id.startswith("_")
    }
    classes: list[str] = []
    exceptions: list[str] = []
    for node in tree.body:
        if not isinstance(node, ast.ClassDef) or node.name.startswith("_"):
            continue
        bases = ", ".join(ast.unparse(b) for b in node.bases)
        title = f"### `{node.name}`" + (f" ({bases})" if bases else "")
        members: list[str] = []
        for item in node.body:
            if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if item.name.startswith("_") and item.name not in ("__new__", "__len__"):
                    continue
                if _is_property(item):
                    ret = ast.unparse(item.returns) if item.returns else "object"
                    members.append(f"- field `{node.name}.{item.name}`: `{ret}`")
                elif item.name == "__new__":
                    members.append(
                        f"- constructor `{_signature(item).replace('__new__(cls, ', node.name + '(').replace('__new__(cls)', node.name + '()')}`"
                    )
                else:
                    kind = "classmethod" if any(
                        ast.unparse(d) == "classmethod" for d in item.decorator_list
                    ) else "method"
                    if isinstance(item, ast.AsyncFunctionDef):
                        kind = "async method (a coroutine)"
                    sig = _signature(item).replace("(self, ", "(").replace("(self)", "()")
                    sig = sig.replace("(cls, ", "(").replace("(cls)", "()")
                    members.append(f"- {kind} `{node.name}.{sig}`")
            elif (
                isinstance(item, ast.AnnAssign)
                and isinstance(item.target, ast.Name)
                and not item.target.id.startswith("_")
            ):
                members.append(
                    f"- field `{node.name}.{item.target.id}`: `{ast.unparse(item.annotation)}`"
                )
        block = title + "\n\n" + ("\n".join(members) if members else "(no members of its own)")
        is_exception = bases and (
            "Exception" in bases or "Error" in bases or node.name.endswith("Error")
        )
        (exceptions if is_exception else classes).append(block)
    text = (
        HEADER
        + "\n## Classes\n\n"
        + "\n\n".join(classes)
        + "\n\n## Exceptions\n\n"
        + "\n\n".join(exceptions)
        + "\n"
    )
    for name, value in sorted(aliases.items(), key=lambda a: -len(a[0])):
        text = text.replace(name, value)
    return text.replace("builtins.", "")


if __name__ == "__main__":
    print(render(), end="")
