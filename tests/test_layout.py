"""The layout's rules, kept true: wings import only downwards, model/ and prepare/ know nothing of
MLflow, and each DVC stage depends on every file of code its command runs."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from varnet import cli

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "varnet"
WINGS = ("core", "surveys", "prepare", "model", "scoring", "training", "evaluation", "serving")
"""Lowest first: a module may import from its own wing and the wings before it."""


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_file(name: str) -> Path | None:
    base = SRC.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_modules(path: Path) -> set[str]:
    """Every varnet module ``path`` imports, at the top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "varnet")
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                and node.module.split(".")[0] == "varnet":
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names
                         if module_file(f"{node.module}.{a.name}"))
    return found


def wing_rank(module: str) -> int:
    """The wing's place in WINGS; the package's own __init__ counts as a foundation."""
    parts = module.split(".")
    if len(parts) == 1:
        return 0
    if parts[1] == "cli":
        return len(WINGS)  # the entry point: nothing may import it
    return WINGS.index(parts[1])


def test_every_module_is_in_a_wing():
    loose = [p.name for p in PACKAGE.glob("*.py") if p.name not in ("__init__.py", "cli.py")]
    assert not loose, f"modules outside the wings: {loose}"
    assert sorted(p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__") \
        == sorted(WINGS)


def test_no_wing_imports_from_a_wing_above_its_own():
    upward = []
    for path in PACKAGE.rglob("*.py"):
        own = module_name(path)
        if own == "varnet.cli":
            continue
        for imported in imported_modules(path):
            if wing_rank(imported) > wing_rank(own):
                upward.append(f"{own} imports {imported}")
    assert not upward, "\n".join(sorted(upward))


def test_model_and_prepare_import_without_mlflow():
    modules = [module_name(p) for wing in ("model", "prepare")
               for p in sorted((PACKAGE / wing).glob("*.py"))]
    code = ("import sys; sys.modules['mlflow'] = None\n"
            + "".join(f"import {m}\n" for m in modules)
            + "assert sys.modules['mlflow'] is None\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


def closure(module: str) -> set[Path]:
    """The files of ``module`` and of everything it imports, with the packages around them."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen or module_file(name) is None:
            continue
        seen.add(name)
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # parent packages run too
        todo += sorted(imported_modules(module_file(name)))
    return {module_file(name) for name in seen}


def stage_commands() -> dict[str, tuple[str, list[str]]]:
    """stage -> (varnet subcommand, deps) from dvc.yaml."""
    stages = yaml.safe_load((SRC.parent / "dvc.yaml").read_text())["stages"]
    out = {}
    for name, stage in stages.items():
        words = stage["cmd"].split()
        assert words[0] == "varnet", f"stage {name}: {stage['cmd']}"
        command = next(w for w in words[1:] if not w.startswith("-"))
        out[name] = (command, stage["deps"])
    return out


@pytest.mark.parametrize("stage", sorted(stage_commands()))
def test_stage_deps_cover_the_code_its_command_runs(stage):
    command, deps = stage_commands()[stage]
    root = SRC.parent
    covered = [root / d for d in deps]
    needed = closure(cli.COMMANDS[command][0]) | {PACKAGE / "cli.py", PACKAGE / "__init__.py"}
    missing = sorted(str(f.relative_to(root)) for f in needed
                     if not any(f == d or d in f.parents for d in covered))
    assert not missing, f"dvc.yaml stage {stage} (varnet {command}) does not depend on {missing}"


def declared(stage: dict, kinds=("outs", "metrics", "plots")) -> set[str]:
    """The paths a dvc.yaml stage declares under ``kinds``."""
    return {next(iter(entry)) if isinstance(entry, dict) else entry
            for kind in kinds for entry in stage.get(kind, [])}


def test_dvc_metrics_are_the_headline_numbers_only():
    """`dvc metrics show` lists reports/headline.json, a few numbers per variant; every other
    report is an output (issue 12, item 15). `varnet sweep` reads the experiments' metrics from
    `dvc exp show`, which reports the declared metrics files only."""
    from varnet.evaluation import sweep

    stages = yaml.safe_load((SRC.parent / "dvc.yaml").read_text())["stages"]
    metrics = {name: declared(stage, ("metrics",))
               for name, stage in stages.items()}
    assert {name: paths for name, paths in metrics.items() if paths} == {
        "evaluate": {"reports/headline.json"}}
    assert sweep.METRICS_FILE == "reports/headline.json"


def test_validate_declares_every_file_it_writes():
    """The cut flow and the dropped stars beside it (issue 12, item 13) are stage outputs."""
    from varnet.prepare import validate

    stage = yaml.safe_load((SRC.parent / "dvc.yaml").read_text())["stages"]["validate"]
    assert {str(path) for path in validate.OUTPUTS} <= declared(stage)


def test_the_train_stage_reruns_when_any_train_param_changes():
    """One stage trains every variant (train.jobs at once): the whole train section, the
    model section and the novelty percentiles are its params."""
    stage = yaml.safe_load((SRC.parent / "dvc.yaml").read_text())["stages"]["train"]
    assert stage["cmd"] == "varnet train"
    assert {"model", "train", "evaluate.percentiles"} <= set(stage["params"])
