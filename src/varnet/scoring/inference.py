"""Scoring sequences with a trained variant: class probabilities, GMM energies, features.

A variant directory (``models/<variant>/``, written by ``varnet train``; its files are
``schema.MODEL_FILES``) holds the network, the GMM fitted once on the training set, the novelty
thresholds, the validation calibration and the resolved config. ``Scorer`` is what training,
the MLflow model and ``varnet score`` use:

    scorer = Scorer.load("models/joint")
    out = scorer.predict(X, aux, phot)        # gamma, energy, class_energy, embedding, features
    calibrated = scorer.calibration["sequence"].apply(out["gamma"], out["energy"],
                                                      out["class_energy"])
    novel = calibrated["p_novel"] <= 0.05     # a false-alarm rate of at most 5%
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from varnet.core import files
from varnet.core.errors import VarnetError
from varnet.core.schema import LEVELS, SERVED_FILES, ModelFolder
from varnet.core.taxonomy import CLASSES
from varnet.model import gmm
from varnet.scoring.calibration import Calibration


def predict(network: keras.Model, inputs: dict[str, np.ndarray], batch_size: int = 500
            ) -> dict[str, np.ndarray]:
    """The network's outputs in inference mode (dropout off), in batches, as NumPy arrays.

    Array slices through the model's cached predict function: no tf.data pipeline, which
    ``Model.predict`` builds (and logs about) on every call. Every slice is zero-padded to
    ``batch_size`` rows, so requests of any size reuse one traced graph (tracing the GRU loops
    costs seconds; a step is overhead-bound, so the padding rows are nearly free).
    """
    n = len(next(iter(inputs.values())))
    parts = []
    for start in range(0, max(n, 1), batch_size):  # no rows: one padded call gives the shapes
        chunk = {k: v[start:start + batch_size] for k, v in inputs.items()}
        rows = len(next(iter(chunk.values())))
        padded = {k: np.concatenate([v, np.zeros((batch_size - rows, *v.shape[1:]), v.dtype)])
                  for k, v in chunk.items()}
        parts.append({k: v[:rows] for k, v in network.predict_on_batch(padded).items()})
    return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}


@dataclass
class Scorer:
    """A trained network plus its frozen GMM, novelty thresholds and calibration."""

    network: keras.Model
    gmm: dict[str, np.ndarray]
    thresholds: dict[str, dict[str, float]]
    """level -> {percentile: training energy} (the paper's flags)."""
    calibration: Calibration
    variant: dict
    classes: tuple[str, ...] = CLASSES

    @classmethod
    def load(cls, model_dir: str | Path) -> Scorer:
        import varnet.model  # noqa: F401  (registers the custom layers)

        folder = ModelFolder(Path(model_dir))
        if missing := folder.missing(SERVED_FILES):
            raise VarnetError(f"{missing[0]}: not found (train the variant first: "
                              f"varnet train <variant>)")
        try:
            network = keras.models.load_model(folder.model, compile=False)
        except (OSError, ValueError, TypeError) as exc:
            raise VarnetError(f"{folder.model}: cannot load the model ({exc})") from exc
        variant = files.read_json(folder.variant)
        thresholds = files.read_json(folder.thresholds)
        if sorted(thresholds) != sorted(LEVELS):
            raise VarnetError(f"{folder.thresholds}: expected thresholds per {list(LEVELS)} "
                              "(written by an older varnet; retrain the variant)")
        classes = tuple(variant.get("classes", CLASSES))
        return cls(network, files.read_npz(folder.gmm), thresholds,
                   Calibration.load(folder.calibration), variant, classes)

    @property
    def photometric(self) -> bool:
        return bool(self.variant.get("photometric", False))

    def predict(self, X: np.ndarray, aux: np.ndarray, phot: np.ndarray | None = None,
                batch_size: int = 500) -> dict[str, np.ndarray]:
        """Network outputs (dropout off) and energies under the frozen GMM.

        X (N, T, 2), aux (N, 3) as in sequences.npz. For a photometric model ``phot`` (N, 3)
        may hold NaN where a value is missing; None means all missing (the model then relies
        on the light curve alone, see docs/model.md).
        Returns gamma (N, K), energy (N,), class_energy (N, K), embedding (N, m),
        features (N, l) = the GMM input z.
        """
        out = predict(self.network, self._inputs(X, aux, phot), batch_size)
        energy, class_energy = gmm.energy_numpy(out["features"], self.gmm, out["observed"])
        return {"gamma": out["gamma"], "energy": energy, "class_energy": class_energy,
                "embedding": out["embedding"], "features": out["features"]}

    def _inputs(self, X, aux, phot) -> dict[str, np.ndarray]:
        X = np.asarray(X, dtype=np.float32)
        aux = np.asarray(aux, dtype=np.float32)
        if X.ndim != 3 or X.shape[-1] != 2 or aux.shape != (len(X), 3):
            raise VarnetError(f"expected X (N, T, 2) and aux (N, 3), got {X.shape} and {aux.shape}")
        inputs = {"X": X, "aux": aux}
        if self.photometric:
            phot = (np.full((len(X), 3), np.nan, np.float32) if phot is None
                    else np.asarray(phot, dtype=np.float32))
            if phot.shape != (len(X), 3):
                raise VarnetError(f"expected phot (N, 3), got {phot.shape}")
            inputs["phot"] = phot
        return inputs
