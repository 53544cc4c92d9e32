"""The house holds: imports run one way, down the floors of docs/architecture.md, and through each
package's face; no module or function grows past what a reader takes in at once."""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).parent.parent
PACKAGE = ROOT / "exporter"


def floors() -> list[str]:
    """The floors as docs/architecture.md lists them, bottom up (`wmbus/` -> `wmbus`)."""
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    line = next(line for line in text.splitlines() if line.startswith("Floors, bottom up:"))
    return [name.rstrip("/").removesuffix(".py") for name in re.findall(r"`([^`]+)`", line)]


def room(module: str) -> str:
    """The floor a module lives on: its package under `exporter`, or its own name at the top."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def face(package: Path) -> set[str]:
    """The names a package's face offers (its `__all__`)."""
    init = package / "__init__.py"
    if not init.exists():
        return set()
    for node in ast.parse(init.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            return set(ast.literal_eval(node.value))
    return set()


def imports(path: Path, root: Path = ROOT) -> Iterator[tuple[int, str]]:
    """Every `exporter` module a file imports (relative imports resolved), with its line."""
    module = ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, a.name) for a in node.names if a.name.startswith("exporter"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            if not target.startswith("exporter"):
                continue
            folder = root.joinpath(*target.split("."))
            exported = face(folder)
            modules = [
                f"{target}.{alias.name}"
                for alias in node.names
                if alias.name not in exported
                and ((folder / f"{alias.name}.py").exists() or (folder / alias.name).is_dir())
            ]
            yield from ((node.lineno, module) for module in modules or [target])


def offences() -> Iterator[str]:
    order = {name: floor for floor, name in enumerate(floors())}
    for path in sorted(PACKAGE.rglob("*.py")):
        where = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        own = room(where)
        for line, target in imports(path):
            other = room(target)
            if other in ("", own) or own == "__main__":
                continue
            if own not in order or other not in order:
                yield f"{path.relative_to(ROOT)}:{line}: {own or other!r} is on no floor"
            elif order[other] > order[own]:
                yield f"{path.relative_to(ROOT)}:{line}: {own} imports {target}, a higher floor"
            elif target.count(".") > 1 and (PACKAGE / other).is_dir():
                yield f"{path.relative_to(ROOT)}:{line}: {target} is behind exporter.{other}'s face"


def test_every_package_and_top_module_is_on_a_floor() -> None:
    present = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    present |= {p.stem for p in PACKAGE.glob("*.py") if p.stem not in ("__init__", "__main__")}
    assert present - set(floors()) == set()


def test_imports_run_down_the_floors_through_the_faces() -> None:
    assert list(offences()) == []


def test_the_rule_sees_an_import_that_runs_back_up(tmp_path: Path) -> None:
    """The checker itself: a relative import into a higher floor is resolved and caught."""
    module = tmp_path / "exporter" / "wmbus" / "bad.py"
    module.parent.mkdir(parents=True)
    module.write_text("from ..pipeline.state import State\nfrom . import frame\n")
    found = [target for _, target in imports(module, tmp_path)]
    assert found == ["exporter.pipeline.state", "exporter.wmbus"]


def imports_column() -> dict[str, set[str]]:
    """What docs/architecture.md's table says each room imports (rooms and libraries; a remark
    in parentheses is for the reader)."""
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    out = {}
    for match in re.finditer(r"^\| `([a-z_]+)(?:/|\.py)` \|.*\| ([^|]*) \|$", text, re.M):
        said = re.sub(r"\([^)]*\)", "", match.group(2)).replace(";", ",")  # remarks aside
        out[match.group(1)] = {w.strip() for w in said.split(",") if w.strip() not in ("", "none")}
    return out


def actual_imports() -> dict[str, set[str]]:
    """What each room's modules import: other rooms, and libraries beyond the standard library."""
    out: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        where = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        own = room(where)
        found = out.setdefault(own, set())
        found |= {room(target) for _, target in imports(path)} - {"", own}
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names = [node.module]
            found |= {
                top
                for name in names
                if (top := name.partition(".")[0]) not in sys.stdlib_module_names
                and top not in ("exporter", "__future__")
            }
    return out


def test_the_map_says_what_each_room_imports() -> None:
    said = imports_column()
    for name, found in actual_imports().items():
        if name in ("", "__main__"):
            continue
        assert said.get(name) == found, f"docs/architecture.md: {name} imports {sorted(found)}"


MODULE_LINES = 600  # the longest module of exporter/ a reader takes in at once
FUNCTION_LINES = 80  # the longest function, decorators and docstring included


def oversized(package: Path = PACKAGE) -> Iterator[str]:
    """Modules over MODULE_LINES and functions over FUNCTION_LINES lines, as path:line messages."""
    for path in sorted(package.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        where = path.relative_to(package.parent)
        if (lines := len(text.splitlines())) > MODULE_LINES:
            yield f"{where}: {lines} lines (at most {MODULE_LINES}: split it by what it owns)"
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                if (length := (node.end_lineno or node.lineno) - start + 1) > FUNCTION_LINES:
                    limit = f"at most {FUNCTION_LINES}"
                    yield f"{where}:{node.lineno} {node.name}: {length} lines ({limit})"


def test_no_module_or_function_is_too_long_to_read() -> None:
    assert list(oversized()) == []


def test_the_size_rule_sees_a_long_function_and_a_long_module(tmp_path: Path) -> None:
    package = tmp_path / "exporter"
    package.mkdir()
    body = "".join(f"    x{n} = {n}\n" for n in range(FUNCTION_LINES))
    (package / "long.py").write_text(f"def long() -> None:\n{body}", encoding="utf-8")
    (package / "big.py").write_text("x = 1\n" * (MODULE_LINES + 1), encoding="utf-8")
    found = list(oversized(package))
    assert [message.split(" (")[0] for message in found] == [
        f"exporter/big.py: {MODULE_LINES + 1} lines",
        f"exporter/long.py:1 long: {FUNCTION_LINES + 1} lines",
    ]
