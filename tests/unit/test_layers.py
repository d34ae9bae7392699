"""The library's layers import downward only, without cycles; the package root imports no torch.

Read statically from the source (every ``import`` statement, those inside functions and under
``TYPE_CHECKING`` included: a lazy import runs whenever its function does), except the torch check,
which imports the package in a fresh interpreter. README's "Layout" describes the same layers.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from ganstudy.codebase import PACKAGE, PACKAGE_DIR, closure, module_file, module_name

ROOT = Path(__file__).resolve().parents[2]

# Bottom to top. A module may import modules of its own layer and of the layers below it.
LAYERS: tuple[tuple[str, frozenset[str]], ...] = tuple(
    (name, frozenset(parts))
    for name, parts in (
        # Ground: every output name, path, env var and seed offset; the one exception type.
        # (errors sits here, below config, because config raises it.)
        ("names", {"", "names", "errors"}),  # "": the package root, ``ganstudy/__init__.py``
        ("config", {"config"}),
        # Services: no GAN knowledge, used by any layer above.
        (
            "services",
            {
                "io",
                "registry",
                "codebase",
                "execution",
                "_torchvision",
                "device",
                "runs",
                "tracking",
                "stats",
                "plots",
                "pages",
            },
        ),  # fmt: skip
        ("data", {"data"}),
        ("models", {"models"}),
        ("losses", {"losses"}),
        ("metrics", {"metrics"}),  # the math, backbones, the reference and evaluate stages
        ("training", {"training"}),  # the loop and the train stage
        ("study", {"study", "report"}),  # the studies, the report stage and the pages
        ("cli", {"cli"}),
    )
)
# The stages that must not load the loop or the games (they read run folders through ``runs``).
WITHOUT_TRAINING = ("stages/reference.py", "stages/evaluate.py", "stages/report.py")


def _modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE_DIR.rglob("*.py"))}


def _layer(module: str) -> int:
    """The index in LAYERS of ``ganstudy.<top>...``'s top-level part ("" for the root)."""
    top = module.split(".")[1] if "." in module else ""
    found = [i for i, (_, parts) in enumerate(LAYERS) if top in parts]
    assert found, f"{module} is in no layer of tests/unit/test_layers.py: place it in one"
    return found[0]


def imports(path: Path) -> set[str]:
    """The modules of this package ``path`` names in its import statements (anywhere in the
    file): ``from pkg import sub`` names the submodule when ``sub`` is one, else ``pkg``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            for alias in node.names:
                sub = f"{module}.{alias.name}"
                found.add(sub if module_file(sub) is not None else module)
    return {m for m in found if m.split(".")[0] == PACKAGE and module_file(m) is not None} - {me}


GRAPH = {name: imports(path) for name, path in _modules().items()}


def test_every_module_has_a_layer():
    for module in GRAPH:
        _layer(module)


def test_layers_import_downward_only():
    upward = [
        f"{a} ({LAYERS[_layer(a)][0]}) imports {b} ({LAYERS[_layer(b)][0]})"
        for a, targets in sorted(GRAPH.items())
        for b in sorted(targets)
        if _layer(b) > _layer(a)
    ]
    assert not upward, "upward imports:\n" + "\n".join(upward)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles():
    assert not _cycles(GRAPH), f"import cycles: {_cycles(GRAPH)}"


def test_the_cycle_check_sees_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_names_is_the_ground():
    """names imports nothing of the package and nothing outside the standard library."""
    tree = ast.parse((PACKAGE_DIR / "names.py").read_text(encoding="utf-8"))
    roots = {
        alias.name.split(".")[0] if isinstance(node, ast.Import) else (node.module or "")
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert roots <= {"pathlib", "typing", "__future__"}, roots


@pytest.mark.parametrize("script", WITHOUT_TRAINING)
def test_stages_after_train_load_neither_the_loop_nor_the_games(script):
    files = {p.relative_to(PACKAGE_DIR).as_posix() for p in closure([ROOT / script])}
    loaded = sorted(f for f in files if f.split("/")[0] in ("training", "losses"))
    assert not loaded, f"{script} loads {loaded}"


def test_import_ganstudy_imports_no_torch():
    code = (
        "import sys, ganstudy, ganstudy.names\n"
        "print(sorted(m for m in ('torch', 'torchvision', 'numpy') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"
