"""The package's own import graph, read from the source (nothing is imported or run).

Two users: a test proves each DVC stage's deps in dvc.yaml cover every file of ``ganstudy`` its
script can execute (so editing one re-runs the stage), and the training resume key hashes only
the files a run's code loads (so a new, unrelated model file does not restart every training).

A module's imports are all its ``import`` statements, those inside functions included: a lazy
import runs whenever its function does. Two dynamic forms are understood too: a package that
imports each of its submodules in a ``pkgutil.iter_modules(__path__)`` loop (the architecture and
game registries), and a data file read beside a module as ``Path(__file__).with_name("x.json")``.
"""

import ast
from collections.abc import Iterable
from pathlib import Path

PACKAGE = "ganstudy"
PACKAGE_DIR = Path(__file__).resolve().parent  # src/ganstudy


def module_file(name: str) -> Path | None:
    """The source file of module ``name`` (``ganstudy.x.y``) in this package; None outside it."""
    parts = name.split(".")
    if parts[0] != PACKAGE:
        return None
    base = PACKAGE_DIR.joinpath(*parts[1:])
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def module_name(path: Path) -> str:
    """The dotted name of a source file of this package."""
    rel = path.resolve().relative_to(PACKAGE_DIR.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _parents(name: str) -> list[str]:
    """``a.b.c`` -> [``a``, ``a.b``, ``a.b.c``]: importing a module runs its packages first."""
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def _absolute(node: ast.ImportFrom, importer: str | None, is_package: bool) -> str | None:
    """The module a ``from ... import`` names, relative levels resolved against ``importer``."""
    if node.level == 0:
        return node.module
    if importer is None:  # a script outside the package cannot import relatively
        return None
    base = importer.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _is_plugin_loop(node: ast.AST) -> bool:
    """``pkgutil.iter_modules(__path__)``: the package imports every submodule of its own."""
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "iter_modules"
        and any(isinstance(a, ast.Name) and a.id == "__path__" for a in node.args)
    )


def _data_file(node: ast.AST) -> str | None:
    """``<...>.with_name("literal")`` in a module that reads files beside itself."""
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "with_name"
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    ):
        return node.args[0].value
    return None


def _direct(path: Path, follow_plugins: bool) -> tuple[frozenset[str], frozenset[Path]]:
    """(modules of this package ``path`` imports, data files it reads beside itself)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    try:
        importer: str | None = module_name(path)
    except ValueError:  # a stage script, outside the package
        importer = None
    is_package = path.name == "__init__.py"
    names: set[str] = set()
    data: set[Path] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = _absolute(node, importer, is_package)
            if module is None:
                continue
            names.add(module)
            # `from pkg import sub` imports the submodule when ``sub`` is one.
            names.update(f"{module}.{alias.name}" for alias in node.names)
        elif follow_plugins and is_package and importer is not None and _is_plugin_loop(node):
            names.update(
                module_name(sub)
                for sub in path.parent.iterdir()
                if (sub.suffix == ".py" and sub.name != "__init__.py")
                or (sub / "__init__.py").is_file()
            )
        elif (name := _data_file(node)) is not None and (path.parent / name).is_file():
            data.add(path.parent / name)
    found = {
        parent
        for name in names
        if name.split(".")[0] == PACKAGE
        for parent in _parents(name)
        if module_file(parent) is not None
    }
    return frozenset(found), frozenset(data)


def closure(sources: Iterable[Path | str], follow_plugins: bool = True) -> set[Path]:
    """Every file of this package that running ``sources`` (files, or dotted module names of
    this package) can execute or read: their transitive imports, packages' ``__init__`` files
    and data files included (``sources`` themselves too, when they are in the package).
    ``follow_plugins`` False leaves out submodules a registry package imports by listing its
    folder: they register names, and a run uses only the ones its config picks."""
    todo: list[Path] = []
    for source in sources:
        if isinstance(source, str) and not source.endswith(".py"):
            file = module_file(source)
            if file is None:
                raise ValueError(f"{source!r} is not a module of {PACKAGE}")
            todo += [f for p in _parents(source) if (f := module_file(p)) is not None]
        else:
            todo.append(Path(source).resolve())
    seen: set[Path] = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        modules, data = _direct(path, follow_plugins)
        seen.update(data)
        todo += [f for m in modules if (f := module_file(m)) is not None]
    return {p for p in seen if p.is_relative_to(PACKAGE_DIR)}
