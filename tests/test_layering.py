"""The import graph of advml: no circle, the layering of docs/design.md, no hidden circle.

The graph is read from the source with ``ast`` (nothing is imported), at module level and
inside functions; imports under ``if TYPE_CHECKING:`` are annotations only and are left
out. Importing ``advml.a.b.c`` also runs the ``__init__`` of ``advml.a`` and ``advml.a.b``,
so an import adds an edge to each package above its target that the importer is not
itself inside (its own packages are already being imported when it runs).

Known violations that another change fixes are listed in :data:`KNOWN` with the issue;
the main tests ignore them, and one expected failure per entry turns into a failure
when the violation is gone, so that the entry is removed.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

import advml

ROOT = Path(advml.__file__).parent

LAYERS: dict[str, int] = {
    # Leaves every part may use (dependency-free support).
    "advml": 0,
    "errors": 0,
    "validation": 0,
    "base": 0,
    "registry": 0,
    "runtime": 0,
    "data": 1,
    "models": 2,  # models/reference.py builds reference networks for a dataset
    # Shared below the families: image operations (blur, JPEG, ...) and measures.
    "imaging": 3,
    "metrics": 3,
    # The families.
    "evasion": 4,
    "poisoning": 4,
    "privacy": 4,
    "extraction": 4,
    "defences": 4,
    "watermark": 4,
    "verification": 4,
    # On top: the report model and renderer, the audit that writes reports, the demo
    # server, the CLI commands (``serve`` starts the server) and the ``advml`` command.
    "report": 5,
    "audit": 6,
    "web": 7,
    "commands": 8,
    "cli": 9,
}
"""Rank of each top-level part: a part imports only parts of a lower rank (or, at rank 0,
the other leaves), apart from :data:`FAMILY_USES`."""

FAMILY_USES: dict[str, frozenset[str]] = {
    # Defences are trained and evaluated against evasion attacks (adversarial training,
    # adaptive evaluation of input cleansing).
    "defences": frozenset({"evasion"}),
    # Transfer of evasion from a stolen copy (docs/extraction.md).
    "extraction": frozenset({"evasion"}),
    # Removal attacks reuse the defences' filters, fine-pruning, distillation and
    # Copycat extraction through their public API (issue 12).
    "watermark": frozenset({"defences", "evasion", "extraction"}),
    # Certificates for tree ensembles measure on the exact attack's split grid (issue 15).
    "verification": frozenset({"evasion"}),
}
"""The imports between families the design allows; any other is a violation."""

KNOWN: dict[tuple[str, str], str] = {}
"""``(importing module, imported top-level part)`` pairs ignored until their fix merges."""


@dataclass(frozen=True)
class Import:
    source: str
    """The importing module, e.g. ``advml.audit.run``."""
    target: str
    """The advml module imported (a package means its ``__init__``)."""
    names: tuple[str, ...]
    """Names taken from ``target`` by ``from ... import``; empty for ``import``."""
    line: int
    in_function: bool

    def __str__(self) -> str:
        where = "inside a function" if self.in_function else "at module level"
        return f"{self.source}:{self.line} imports {self.target} {where}"


def part(module: str) -> str:
    """The top-level part of ``advml`` a module belongs to (``advml`` for the root)."""
    pieces = module.split(".")
    return pieces[1] if len(pieces) > 1 else "advml"


@functools.cache
def modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted(ROOT.rglob("*.py")):
        pieces = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if pieces[-1] == "__init__":
            pieces.pop()
        found[".".join(pieces)] = path
    return found


def _resolve(name: str) -> str | None:
    """The advml module ``name`` denotes: itself, or the nearest package or module above."""
    known = modules()
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def _is_type_checking(test: ast.expr) -> bool:
    return "TYPE_CHECKING" in ast.unparse(test)


@functools.cache
def imports() -> tuple[Import, ...]:
    """Every import of an advml module by an advml module, outside ``TYPE_CHECKING``."""
    found: list[Import] = []
    for module, path in modules().items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]

        def visit(node: ast.AST, in_function: bool, *, module: str = module, pkg: str = package):
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.If) and _is_type_checking(child.test):
                    visit(ast.Module(body=child.orelse, type_ignores=[]), in_function)
                    continue  # the else branch runs; the body is for type checkers
                inner = in_function or isinstance(
                    child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda
                )
                if isinstance(child, ast.Import):
                    for alias in child.names:
                        target = _resolve(alias.name) if alias.name.startswith("advml") else None
                        if target:
                            found.append(Import(module, target, (), child.lineno, inner))
                elif isinstance(child, ast.ImportFrom):
                    base = child.module or ""
                    if child.level:
                        anchor = pkg.split(".")[: len(pkg.split(".")) - child.level + 1]
                        base = ".".join([*anchor, base] if base else anchor)
                    if base == "advml" or base.startswith("advml."):
                        for alias in child.names:
                            sub = f"{base}.{alias.name}"
                            target = sub if sub in modules() else _resolve(base)
                            names = () if sub in modules() else (alias.name,)
                            if target:
                                found.append(Import(module, target, names, child.lineno, inner))
                visit(child, inner)

        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        visit(tree, False)
        found.extend(_discovered(module, tree))
    return tuple(found)


def _discovered(package: str, tree: ast.Module) -> list[Import]:
    """A package that imports its own modules by name (``importlib.import_module(
    f"{__name__}.{name}")``, the discovery of audit sections, report renderers and CLI
    commands) depends on each of them, inside the function that does it.

    The registry's import of a family by a string is left out: it is the one sanctioned
    way for a leaf to reach the families by name.
    """
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and ast.unparse(node.func).endswith("import_module")
            and node.args
            and isinstance(node.args[0], ast.JoinedStr)
            and "__name__" in ast.unparse(node.args[0])
        ):
            prefix = package + "."
            return [
                Import(package, name, (), node.lineno, True)
                for name in modules()
                if name.startswith(prefix) and "." not in name[len(prefix) :]
            ]
    return []


def is_known(imp: Import) -> bool:
    return (imp.source, part(imp.target)) in KNOWN


def executed(imp: Import) -> set[str]:
    """The modules an import runs: its target and the packages above it that the importer
    is not inside."""
    own = _ancestors(imp.source) | {imp.source}
    return ({imp.target} | _ancestors(imp.target)) - own


def _ancestors(module: str) -> set[str]:
    pieces = module.split(".")
    return {".".join(pieces[:i]) for i in range(1, len(pieces))}


def module_graph(*, function_level: bool) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for imp in imports():
        if is_known(imp) or (imp.in_function and not function_level):
            continue
        graph.setdefault(imp.source, set()).update(executed(imp))
    return graph


def circles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    nodes = sorted(set(graph) | {w for ws in graph.values() for w in ws})
    for root in nodes:
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors = work[-1]
            advanced = False
            for nxt in successors:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph.get(nxt, ())))))
                    advanced = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    component.append(top)
                    if top == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def reaches(graph: Mapping[str, Iterable[str]], start: str, goal: str) -> bool:
    seen, todo = {start}, [start]
    while todo:
        node = todo.pop()
        if node == goal:
            return True
        for nxt in graph.get(node, ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return False


def _explain(component: list[str]) -> str:
    inside = set(component)
    edges = sorted(str(imp) for imp in imports() if imp.source in inside and executed(imp) & inside)
    return f"circle {component}, through:\n  " + "\n  ".join(edges)


# -- the graph is read ----------------------------------------------------------------


def test_the_graph_sees_module_and_function_level_imports() -> None:
    found = {(i.source, i.target, i.in_function) for i in imports()}
    assert ("advml.audit.run", "advml.models.access", False) in found
    assert ("advml.cli", "advml.commands", False) in found
    assert any(src.startswith("advml.commands.") and fn for src, _, fn in found)
    assert set(map(part, modules())) <= set(LAYERS), (
        f"parts without a layer: {sorted(set(map(part, modules())) - set(LAYERS))}; "
        "give each a rank in LAYERS and describe it in docs/design.md"
    )


def test_circles_are_found() -> None:
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []


# -- (a) no circle ----------------------------------------------------------------------


def test_no_circle_between_parts() -> None:
    graph: dict[str, set[str]] = {}
    for imp in imports():
        if not is_known(imp) and part(imp.source) != part(imp.target):
            graph.setdefault(part(imp.source), set()).add(part(imp.target))
    found = circles(graph)
    assert not found, "\n".join(
        f"parts {c} import each other: "
        + "; ".join(
            str(i)
            for i in imports()
            if not is_known(i)
            and {part(i.source), part(i.target)} <= set(c)
            and part(i.source) != part(i.target)
        )
        for c in found
    )


def test_no_circle_between_modules_at_import_time() -> None:
    found = circles(module_graph(function_level=False))
    assert not found, "\n".join(_explain(c) for c in found)


# -- (b) the layering of docs/design.md -------------------------------------------------


def _allowed(source: str, target: str) -> bool:
    if source == target:
        return True
    low, high = LAYERS[target], LAYERS[source]
    if low < high:
        return True
    if low == high == 0:
        return True
    return target in FAMILY_USES.get(source, frozenset())


def test_layering() -> None:
    wrong = [
        f"{imp} ({part(imp.source)} may not use {part(imp.target)})"
        for imp in imports()
        if not is_known(imp) and not _allowed(part(imp.source), part(imp.target))
    ]
    assert not wrong, "\n".join(wrong)


def test_family_uses_form_no_circle() -> None:
    assert not circles({a: set(b) for a, b in FAMILY_USES.items()})


def test_no_private_name_across_parts() -> None:
    """Another part's ``_private`` helper is not its API: move it where both can use it."""
    wrong = [
        f"{imp} and takes {name}"
        for imp in imports()
        if part(imp.source) != part(imp.target) and not is_known(imp)
        for name in imp.names
        if name.startswith("_") and not name.startswith("__")
    ]
    assert not wrong, "\n".join(wrong)


# -- (c) no function-level import that hides a circle -----------------------------------


def test_no_function_level_import_closes_a_circle() -> None:
    """Importing inside a function to keep ``advml --help`` fast is fine; doing it because
    the module-level import would be circular hides a circle."""
    graph = module_graph(function_level=True)
    wrong = [
        f"{imp}: {hit} imports {imp.source} back"
        for imp in imports()
        if imp.in_function and not is_known(imp)
        for hit in sorted(executed(imp))
        if reaches(graph, hit, imp.source)
    ]
    assert not wrong, "\n".join(wrong)


# -- the known violations, until their fix merges -----------------------------------------


@pytest.mark.parametrize(
    ("source", "target"),
    [
        pytest.param(s, t, marks=pytest.mark.xfail(strict=True, reason=r))
        for (s, t), r in KNOWN.items()
    ],
)
def test_known_violation_is_fixed(source: str, target: str) -> None:
    """Fails (expected) while the violation is there; passes, and so fails strictly, once
    it is fixed: then delete its entry from KNOWN."""
    still = [str(i) for i in imports() if i.source == source and part(i.target) == target]
    assert not still, "\n".join(still)
