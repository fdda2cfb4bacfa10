"""The layering rule of docs/architecture.md, checked on every module's imports.

The rule table lives in docs/architecture.md only (between ``<!-- rules`` and
``<!-- /rules -->``); this file reads it. Every import counts: at module level, inside
functions, under ``TYPE_CHECKING``, relative ones, and ``importlib.import_module("...")``
with a literal name.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "architecture.md"
SOURCE_DIRS = ("corpus", "index", "bot", "newsdesk", "scripts")
BY_NAME = {"__import__", "import_module"}
NOT_CODE = {"tests", "docs", "var", "build", "dist"}

# Strings in the engine that still spell a front end's syntax (docs/architecture.md,
# "Known debts"): (module, the name the string is assigned to).
SYNTAX_DEBTS: set[tuple[str, str]] = set()
FRONT_END_SYNTAX = re.compile(
    r"\bnewsdesk (ask|reindex|eval|bot)\b|(^|\s)/(start|help|subscribe|unsubscribe|topics|more)\b"
)


# ---- the rule table --------------------------------------------------------------------


@dataclass(frozen=True)
class Rules:
    modules: dict[str, str]  # a module name (covering its submodules) -> its part
    allowed: dict[str, frozenset[str]]  # part -> the parts it may import (itself included)

    def part_of(self, module: str) -> str | None:
        """The part of ``module``: the longest listed name it is, or is a submodule of."""
        best = None
        for name in self.modules:
            if (module == name or module.startswith(name + ".")) and (
                best is None or len(name) > len(best)
            ):
                best = name
        return self.modules[best] if best else None


def _names(cell: str) -> list[str]:
    return [n.strip().strip("`") for n in cell.split(",") if n.strip().strip("`—- ")]


def parse_rules(text: str) -> Rules:
    block = re.search(r"<!-- rules\b.*?-->(.*?)<!-- /rules -->", text, re.S)
    assert block, f"{DOC} has no <!-- rules --> ... <!-- /rules --> table"
    rows = [line for line in block.group(1).splitlines() if line.strip().startswith("|")]
    modules: dict[str, str] = {}
    may: dict[str, list[str]] = {}
    for row in rows[2:]:  # after the header and the |---| line
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        assert len(cells) == 3, f"a rule row needs 3 cells: {row!r}"
        (part,), mods, imports = _names(cells[0]), _names(cells[1]), _names(cells[2])
        assert part not in may, f"part {part} is listed twice"
        for m in mods:
            assert m not in modules, f"module {m} is in two parts"
            modules[m] = part
        may[part] = imports
    allowed = {}
    for part, imports in may.items():
        parts = {part}
        for name in imports:
            if name.endswith(".*"):
                group = {p for p in may if p.startswith(name[:-1])}
                assert group, f"{part}: {name} names no part"
                parts |= group
            else:
                assert name in may, f"{part} may import {name}, which is not a part"
                parts.add(name)
        allowed[part] = frozenset(parts)
    return Rules(modules, allowed)


@pytest.fixture(scope="module")
def rules() -> Rules:
    return parse_rules(DOC.read_text(encoding="utf-8"))


# ---- the imports of a module -----------------------------------------------------------


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(source: str, module: str, *, is_package: bool = False) -> list[tuple[int, str]]:
    """(line, imported module) for every import in ``source``, wherever it is."""
    found: list[tuple[int, str]] = []
    package = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # `from index import errors` imports index.errors (a part may be that deep)
            found.append((node.lineno, target))
            found += [(node.lineno, f"{target}.{alias.name}") for alias in node.names]
        elif (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and (
                (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                or (
                    isinstance(node.func, ast.Name)
                    and node.func.id in {"__import__", "import_module"}
                )
            )
        ):
            found.append((node.lineno, node.args[0].value))
    return found


def violations(rules: Rules, module: str, source: str, *, is_package: bool = False) -> list[str]:
    own = rules.part_of(module)
    if own is None:
        return [f"{module} belongs to no part of docs/architecture.md"]
    out, seen = [], set()
    for line, target in imports_of(source, module, is_package=is_package):
        part = rules.part_of(target)
        if part is None or part in rules.allowed[own] or (line, part) in seen:
            continue  # the standard library or a third-party package, allowed, or told
        seen.add((line, part))
        out.append(f"{module}:{line}: {module} ({own}) imports {target} ({part})")
    return out


def project_modules() -> list[Path]:
    return sorted(p for d in SOURCE_DIRS for p in (ROOT / d).rglob("*.py"))


# ---- the tests -------------------------------------------------------------------------


def test_every_code_folder_is_on_the_whiteboard(rules):
    """A new top-level folder of Python code must be given a part (and SOURCE_DIRS)."""
    folders = {
        p.relative_to(ROOT).parts[0]
        for p in ROOT.glob("*/**/*.py")
        if p.relative_to(ROOT).parts[0] not in NOT_CODE
        and not p.relative_to(ROOT).parts[0].startswith(".")
        and not p.relative_to(ROOT).parts[0].endswith(".egg-info")
    }
    assert folders <= set(SOURCE_DIRS), f"not on the whiteboard: {folders - set(SOURCE_DIRS)}"
    for folder in SOURCE_DIRS:
        assert rules.part_of(folder + ".x") is not None, f"{folder}/ belongs to no part"


def test_the_rule_table_is_layered(rules):
    """No cycle between parts: every import points down."""
    graph = {p: allowed - {p} for p, allowed in rules.allowed.items()}
    done: set[str] = set()

    def visit(part: str, path: tuple[str, ...]) -> None:
        assert part not in path, "the rule table has a cycle: " + " -> ".join((*path, part))
        if part in done:
            return
        for lower in graph[part]:
            visit(lower, (*path, part))
        done.add(part)

    for part in graph:
        visit(part, ())


def test_the_rule_table_keeps_the_layers_of_issue_10(rules):
    """What the table must go on saying, so that loosening it to silence a failure shows."""
    may = rules.allowed
    index_parts = {p for p in may if p.startswith("index.")}
    front_ends = {"bot", "bot.entry", "cli", "newsdesk", "scripts", "telegram"}
    assert may["corpus"] == {"corpus"}, "corpus imports nothing of the project"
    for part in index_parts:
        assert not may[part] & front_ends, f"{part} may not import a front end or telegram"
    assert not may["newsdesk"] & {"bot", "bot.entry", "cli", "telegram"}
    assert not may["bot"] & {"cli", "bot.entry"} and not may["bot.entry"] & {"cli"}
    assert "bot" not in may["cli"] and "telegram" not in may["cli"], (
        "the CLI reaches the bot only through bot.__main__"
    )
    talk_to_telegram = {p for p in may if "telegram" in may[p]} - {"telegram"}
    assert talk_to_telegram <= {"bot", "bot.entry", "scripts"}


@pytest.mark.parametrize("path", project_modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_follow_the_rule(rules, path):
    module = module_name(path)
    problems = violations(
        rules, module, path.read_text(encoding="utf-8"), is_package=path.name == "__init__.py"
    )
    assert not problems, "imports that docs/architecture.md does not allow:\n" + "\n".join(problems)


def _strings(tree: ast.AST) -> list[tuple[int, str, str | None]]:
    """(line, text, assigned name) of every string constant that is not a docstring."""
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docstrings.add(id(body[0].value))
    names: dict[int, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name):
                for sub in ast.walk(node.value):
                    names[id(sub)] = target.id
    return [
        (node.lineno, node.value, names.get(id(node)))
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
    ]


def test_the_engine_spells_no_front_end_syntax():
    """corpus/ and index/ raise typed errors; the CLI and the bot word the commands."""
    found = []
    for path in project_modules():
        module = module_name(path)
        if module.split(".")[0] not in {"corpus", "index"}:
            continue
        for line, text, name in _strings(ast.parse(path.read_text(encoding="utf-8"))):
            if FRONT_END_SYNTAX.search(text) and (module, name) not in SYNTAX_DEBTS:
                found.append(f"{module}:{line}: {text!r}")
    assert not found, "front-end syntax in the engine:\n" + "\n".join(found)


# ---- the checker itself ----------------------------------------------------------------

SAMPLE_RULES = """
<!-- rules -->
| Part | Modules | May import |
|---|---|---|
| `low` | `low` | — |
| `mid.a` | `mid`, `mid.a` | `low` |
| `mid.b` | `mid.b` | `low`, `mid.a` |
| `top` | `top` | `mid.*` |
<!-- /rules -->
"""


def test_the_checker_sees_every_kind_of_import():
    rules = parse_rules(SAMPLE_RULES)
    assert rules.allowed["top"] == {"top", "mid.a", "mid.b"}
    assert rules.part_of("mid.new") == "mid.a" and rules.part_of("mid.b.x") == "mid.b"
    source = (
        "import os\n"
        "from typing import TYPE_CHECKING\n"
        "from low import thing\n"  # allowed
        "if TYPE_CHECKING:\n"
        "    from top import App\n"  # 5: under TYPE_CHECKING
        "def f():\n"
        "    import top.x\n"  # 7: inside a function
        "    from .. import top\n"  # 8: relative, from mid.b.sub: ..  is mid
        "    from . import c\n"  # 9: mid.b.c: own part
        "    importlib.import_module('top.y')\n"  # 10: by name
    )
    found = violations(rules, "mid.b.sub", source)
    lines = sorted({int(v.split(":")[1]) for v in found})
    assert lines == [5, 7, 10], found
    # `from .. import top` from mid.b.sub is mid.top: in part mid.a, which mid.b may import
    assert violations(rules, "low.x", "from mid import a\n")  # the lowest reaches up
    assert violations(rules, "stray", "") == ["stray belongs to no part of docs/architecture.md"]


def test_the_checker_finds_a_cycle_in_the_table():
    looped = SAMPLE_RULES.replace("| `low` | `low` | — |", "| `low` | `low` | `top` |")
    with pytest.raises(AssertionError, match="cycle"):
        test_the_rule_table_is_layered(parse_rules(looped))


# ---- the engine's errors carry data; the edges word them -------------------------------


def test_an_index_error_carries_its_directory_and_the_edges_word_the_command(tmp_path):
    import pickle

    from corpus.errors import NewsdeskError as Base
    from index.errors import IndexCorruptError, IndexMissingError, NewsdeskError
    from newsdesk.messages import error_message

    assert NewsdeskError is Base  # one base error, at the bottom
    damaged = IndexCorruptError("The index file v1/vectors.npy is damaged.", index_dir=tmp_path)
    assert "newsdesk" not in str(damaged) and damaged.index_dir == tmp_path
    assert error_message(damaged) == (
        f"The index file v1/vectors.npy is damaged. Rebuild it with: newsdesk reindex "
        f"--index {tmp_path} --corpus DIR"
    )
    missing = IndexMissingError(f"No index at {tmp_path}.", index_dir=tmp_path)
    assert "Build it with: newsdesk reindex" in error_message(missing)
    assert pickle.loads(pickle.dumps(missing)).index_dir == tmp_path  # across processes
    assert error_message(NewsdeskError("Something else.")) == "Something else."
