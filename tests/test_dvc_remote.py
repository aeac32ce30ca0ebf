"""The project's DVC remote (issue 12, item 16): a snapshot one clone pushes, a fresh clone pulls.

A temporary git + DVC project carries this repository's .dvc/config (the default remote
`local`, the folder varnet-dvc-store beside the clone) and a snapshot stage; its output is
pushed, then pulled into a fresh `git clone`, byte for byte. `dvc remote modify --local` sends
one clone's pushes elsewhere without changing a committed file. Offline, seconds; skipped
without git or dvc.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
GIT = shutil.which("git")
DVC = shutil.which("dvc", path=str(Path(sys.executable).parent)) or shutil.which("dvc")
pytestmark = [pytest.mark.skipif(GIT is None, reason="git not found on PATH"),
              pytest.mark.skipif(DVC is None, reason="dvc not found beside the Python "
                                                     "interpreter or on PATH")]

SNAPSHOT_STAGE = f"""\
stages:
  snapshot:
    cmd: {sys.executable} snapshot.py
    deps:
      - snapshot.py
    outs:
      - data/raw/tiny
"""
SNAPSHOT_SCRIPT = """\
import pandas as pd
from pathlib import Path

root = Path("data/raw/tiny")
root.mkdir(parents=True, exist_ok=True)
pd.DataFrame({"id": ["a", "b"], "period": [0.5, 3.1]}).to_parquet(root / "catalog.parquet")
pd.DataFrame({"id": ["a", "a", "b"], "time": [1.0, 2.0, 3.0], "mag": [13.1, 13.3, 12.0]}
             ).to_parquet(root / "lightcurves.parquet")
"""


def run(cwd: Path, *command: str) -> str:
    """Run git/dvc in ``cwd`` with no user or system configuration and no network."""
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "DVC_GLOBAL_CONFIG_DIR": str(cwd.parent / "cfg"),
           "DVC_SYSTEM_CONFIG_DIR": str(cwd.parent / "cfg"),
           "DVC_SITE_CACHE_DIR": str(cwd.parent / "site-cache"),
           "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{' '.join(command)} in {cwd}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def commit(cwd: Path, message: str) -> None:
    run(cwd, GIT, "add", "-A")
    run(cwd, GIT, "-c", "user.name=varnet test", "-c", "user.email=test@varnet.invalid",
        "commit", "-q", "-m", message)


def hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def project(tmp_path) -> Path:
    """A committed git + DVC project with this repository's .dvc/config and a reproduced
    snapshot stage, at tmp_path/project."""
    root = tmp_path / "project"
    root.mkdir()
    run(root, GIT, "init", "-q")
    run(root, DVC, "init", "-q")
    shutil.copy(PROJECT_ROOT / ".dvc" / "config", root / ".dvc" / "config")
    (root / "dvc.yaml").write_text(SNAPSHOT_STAGE)
    (root / "snapshot.py").write_text(SNAPSHOT_SCRIPT)
    run(root, DVC, "repro", "-q")
    commit(root, "snapshot")
    return root


def test_a_pushed_snapshot_pulls_into_a_fresh_clone_from_the_default_remote(project):
    assert run(project, DVC, "remote", "default").strip() == "local"
    run(project, DVC, "push", "-q")
    store = project.parent / "varnet-dvc-store"   # beside the clone, as README says
    assert (store / "files" / "md5").is_dir()

    clone = project.parent / "clone"
    run(project.parent, GIT, "clone", "-q", str(project), str(clone))
    assert not (clone / "data" / "raw" / "tiny").exists()
    run(clone, DVC, "pull", "-q")
    snapshot = hashes(project / "data" / "raw" / "tiny")
    assert set(snapshot) == {"catalog.parquet", "lightcurves.parquet"}
    assert hashes(clone / "data" / "raw" / "tiny") == snapshot
    assert "up to date" in run(clone, DVC, "status")


def test_a_local_override_moves_one_clones_remote_and_commits_nothing(project):
    private = project.parent / "private-store"
    run(project, DVC, "remote", "modify", "--local", "local", "url", str(private))
    assert run(project, GIT, "status", "--porcelain") == ""   # .dvc/config.local is ignored
    run(project, DVC, "push", "-q")
    assert (private / "files" / "md5").is_dir()
    assert not (project.parent / "varnet-dvc-store").exists()

    clone = project.parent / "clone"
    run(project.parent, GIT, "clone", "-q", str(project), str(clone))
    run(clone, DVC, "remote", "modify", "--local", "local", "url", str(private))
    run(clone, DVC, "pull", "-q")
    assert hashes(clone / "data" / "raw" / "tiny") == hashes(project / "data" / "raw" / "tiny")
