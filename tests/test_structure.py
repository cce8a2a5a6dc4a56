"""House rules the code must keep: no private names used across modules, no import cycles inside elfkit."""
import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "elfkit"


def _modules():
    for f in sorted(PKG.rglob("*.py")):
        rel = f.relative_to(PKG.parent).with_suffix("")
        name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        yield name, f, ast.parse(f.read_text())


def _resolve(module: str, node: ast.ImportFrom, is_pkg: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_pkg else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports():
    """{module: {(imported module, name or None)}} for imports of elfkit modules, anywhere in a file."""
    out = {}
    names = {n for n, _, _ in _modules()}
    for name, f, tree in _modules():
        found = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                target = _resolve(name, node, f.name == "__init__.py")
                if not target.startswith("elfkit"):
                    continue
                for a in node.names:
                    sub = f"{target}.{a.name}"
                    found.add((sub, None) if sub in names else (target, a.name))
            elif isinstance(node, ast.Import):
                found |= {(a.name, None) for a in node.names if a.name.startswith("elfkit")}
        out[name] = found
    return out


def test_no_private_names_across_modules():
    bad = []
    aliases_by_module = {}
    for name, f, tree in _modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                target = _resolve(name, node, f.name == "__init__.py")
                for a in node.names:
                    if target.startswith("elfkit") and a.name.startswith("_") and not a.name.startswith("__"):
                        bad.append(f"{name}: from {target} import {a.name}")
                    aliases_by_module.setdefault(name, set()).add(a.asname or a.name)
        mods = aliases_by_module.get(name, set())
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in mods
                    and node.attr.startswith("_") and not node.attr.startswith("__")):
                bad.append(f"{name}: {node.value.id}.{node.attr}")
    assert not bad, bad


def test_no_import_cycles_at_module_level():
    """Module-level imports between elfkit modules form no cycle (imports inside functions are allowed: they are
    how torch-side code stays out of a replay)."""
    names = {n for n, _, _ in _modules()}
    edges = {}
    for name, f, tree in _modules():
        deps = set()
        for node in tree.body:
            if isinstance(node, ast.ImportFrom):
                target = _resolve(name, node, f.name == "__init__.py")
                for a in node.names:
                    sub = f"{target}.{a.name}"
                    deps.add(sub if sub in names else target)
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names}
        edges[name] = {d for d in deps if d in names and d != name and d != "elfkit"}
    cycles = []

    def visit(n, stack):
        if n in stack:
            cycles.append(stack[stack.index(n):] + [n])
            return
        for d in edges.get(n, ()):
            visit(d, stack + [n])

    for n in sorted(edges):
        visit(n, [])
    assert not cycles, cycles[:3]


def test_no_cycles_even_through_imports_inside_functions():
    """Counting imports inside functions too, no module reaches itself (the review found cli <-> reproduce and
    context -> experiments -> results -> context)."""
    imports = _imports()
    deps = {m: {t for t, _ in v if t != m and t in imports and t != "elfkit"} for m, v in imports.items()}

    def reach(a):
        seen, todo = set(), [a]
        while todo:
            for d in deps.get(todo.pop(), ()):
                if d not in seen:
                    seen.add(d)
                    todo.append(d)
        return seen

    cyclic = sorted(m for m in deps if m in reach(m))
    assert not cyclic, cyclic


def test_every_ek_name_the_readme_and_notebooks_use_exists():
    """`ek.<name>` in the README's code and the notebooks resolves through elfkit's lazy surface (a name missing
    from it raises AttributeError only when a user runs that line)."""
    import re

    import elfkit as ek

    root = PKG.parent
    texts = [(root / "README.md").read_text()] + [p.read_text() for p in sorted((root / "notebooks").glob("*.ipynb"))]
    used = {m for t in texts for m in re.findall(r"\bek\.([a-z_]\w*)", t)}
    assert used and not sorted(n for n in used if n not in ek.__all__)
