#!/usr/bin/env python3
"""Check the package layout: import cycles, modules over 400 lines, functions over 60 lines.

Reads the source with the standard library's ``ast`` only, so it runs before anything is
installed. The repository folders map onto the installed package the way pyproject.toml
installs them (``backends/`` is ``worldgen.backends`` and so on). Every import counts, at the
top of a module or inside a function, because a lazy import still ties the two modules
together; relative imports are resolved against the importing module. Exits 1 and lists the
findings when there are any, 0 otherwise.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60

# Repository folder -> the dotted package it installs as.
ROOTS = {
    "worldgen": "worldgen",
    "backends": "worldgen.backends",
    "plugins": "worldgen.plugins",
    "exporters": "worldgen.exporters",
}


def discover_modules(repo: Path) -> dict[str, Path]:
    """Map every dotted module name of the installed package to its source file."""
    modules: dict[str, Path] = {}
    for folder, package in ROOTS.items():
        root = repo / folder
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*.py")):
            rel = path.relative_to(root).with_suffix("")
            parts = list(rel.parts)
            # Only folders that are packages install (plugins/worldgen-edges is a separate project).
            if not all((root.joinpath(*parts[:i]) / "__init__.py").is_file() for i in range(len(parts))):
                continue
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join([package, *parts])] = path
    return modules


def _resolve_relative(module: str, is_package: bool, level: int, target: str | None) -> str:
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


def _known(name: str, modules: dict[str, Path]) -> str | None:
    """The longest known module that ``name`` is, or lies inside (``a.b.func`` -> ``a.b``)."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def imports_of(module: str, path: Path, tree: ast.AST, modules: dict[str, Path]) -> set[str]:
    """Every package module that ``module`` imports, anywhere in its body."""
    found: set[str] = set()
    is_package = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                hit = _known(alias.name, modules)
                if hit:
                    found.add(hit)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = _resolve_relative(module, is_package, node.level, node.module)
            else:
                base = node.module or ""
            for alias in node.names:
                # ``from pkg import sub`` imports the submodule when there is one.
                hit = _known(f"{base}.{alias.name}", modules) or _known(base, modules)
                if hit:
                    found.add(hit)
    found.discard(module)
    return found


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
    return sorted(components)


def long_functions(tree: ast.AST) -> list[tuple[str, int, int]]:
    """(qualified name, first line, length) of every function longer than the limit."""
    found = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = f"{prefix}{child.name}"
                first = min([child.lineno] + [d.lineno for d in child.decorator_list])
                length = child.end_lineno - first + 1
                if length > MAX_FUNCTION_LINES:
                    found.append((name, child.lineno, length))
                visit(child, name + ".")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            else:
                visit(child, prefix)

    visit(tree, "")
    return found


def check(repo: Path) -> list[str]:
    modules = discover_modules(repo)
    problems: list[str] = []
    graph: dict[str, set[str]] = {}
    for module, path in sorted(modules.items()):
        source = path.read_text(encoding="utf-8")
        tree = ast.parse(source, filename=str(path))
        graph[module] = imports_of(module, path, tree, modules)
        rel = path.relative_to(repo)
        lines = len(source.splitlines())
        if lines > MAX_MODULE_LINES:
            problems.append(f"module over {MAX_MODULE_LINES} lines: {rel} ({lines})")
        for name, lineno, length in long_functions(tree):
            problems.append(f"function over {MAX_FUNCTION_LINES} lines: {rel}:{lineno} {name} ({length})")
    for component in find_cycles(graph):
        problems.append("import cycle: " + " <-> ".join(component))
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("repo", nargs="?", type=Path, default=Path(__file__).resolve().parents[1],
                        help="repository root (default: the one holding this script)")
    args = parser.parse_args(argv)
    problems = check(args.repo)
    for line in problems:
        print(line)
    if problems:
        print(f"{len(problems)} layout problem(s)", file=sys.stderr)
        return 1
    print("layout ok: no import cycle, no module over "
          f"{MAX_MODULE_LINES} lines, no function over {MAX_FUNCTION_LINES} lines")
    return 0


if __name__ == "__main__":
    sys.exit(main())
