"""Which data and which trained model an output came from, so that no report mixes outputs of
different data.

A fingerprint is ``{file name: md5}`` of the files an output was computed from; md5 is DVC 3's
hash of a file (tracking.file_md5), so the values can be checked against dvc.lock and the
``data.*`` tags of the MLflow training runs.

  data fingerprint    data/processed/sequences.npz and split.npz (`varnet sequences`, `split`)
  model fingerprint   models/<variant>/predictions.npz: every output of the network that the
                      baseline and evaluation read, rewritten by each training
  code fingerprint    varnet's Python sources: `varnet train` records it so that a sequential
                      variant takes another's autoencoder only when the same code trained it

Who records what: `varnet train` the data fingerprint in models/<variant>/variant.json
(``"data"``); `varnet baseline` both, per variant, in reports/baseline.json (``"provenance"``);
`varnet evaluate` both, per variant, in reports/metrics.json and table2.md. `varnet baseline`
and `varnet evaluate` skip a model folder trained on other data, and evaluate leaves out the
random-forest rows of a baseline computed from other data or another training, printing which
file and why (`mismatch`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

from varnet.core import files
from varnet.core.errors import VarnetError
from varnet.core.schema import SEQUENCES_FILE, SPLIT_FILE, ModelFolder
from varnet.core.tracking import file_md5


def fingerprint(paths: Iterable[str | Path]) -> dict[str, str]:
    """{file name: md5} of ``paths``; each must exist."""
    found = {}
    for path in map(Path, paths):
        if not path.is_file():
            raise VarnetError(f"{path}: file not found (run the stage that writes it first)")
        found[path.name] = file_md5(path)
    return found


def data_fingerprint(sequences: str | Path = SEQUENCES_FILE,
                     split: str | Path = SPLIT_FILE) -> dict[str, str]:
    """The fingerprint of the prepared data a variant is trained and evaluated on."""
    return fingerprint([sequences, split])


def model_fingerprint(folder: ModelFolder) -> dict[str, str]:
    """The fingerprint of one training's outputs in a model folder."""
    return fingerprint([folder.predictions])


def code_fingerprint() -> str:
    """md5 of varnet's Python sources (paths and contents), the code a training ran."""
    package = Path(__file__).resolve().parents[1]
    digest = hashlib.md5()
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def mismatch(recorded: dict[str, str] | None, current: dict[str, str]) -> str | None:
    """Why ``recorded`` does not describe the ``current`` files, or None when it does."""
    if not recorded:
        return "no fingerprint recorded: written before varnet recorded provenance"
    changed = [f"{name} recorded {recorded[name][:8]}, now {md5[:8]}" if name in recorded
               else f"{name} not recorded" for name, md5 in current.items()
               if recorded.get(name) != md5]
    return "; ".join(changed) or None


def trained_on_other_data(folder: ModelFolder, data: dict[str, str]) -> str | None:
    """Why the variant in ``folder`` was not trained on ``data`` (naming the file), or None."""
    reason = mismatch(files.read_json(folder.variant).get("data"), data)
    return None if reason is None else f"{folder.variant} does not match the data: {reason}"
