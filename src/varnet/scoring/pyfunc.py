"""The MLflow model of a trained variant: `score_lightcurves` behind MLflow's pyfunc interface.

``log_model`` logs a model folder's served files (schema.SERVED_FILES) and its preprocessing
record as the pyfunc model of the active run and registers a version. The model's code is
`varnet.scoring.mlflow_model` (MLflow "models from code": MLflow copies that file into the
model and runs it on load); ``VarnetModel.load_context`` builds a `Scorer` from the artifacts.
The request and answer tables are described in `varnet.scoring.lightcurves`.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict
from importlib.metadata import version
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

from varnet.core.errors import VarnetError
from varnet.core.schema import SERVED_FILES, ModelFolder
from varnet.scoring.calibration import DEFAULT_ALPHA
from varnet.scoring.lightcurves import (
    DEFAULT_BAND,
    Preprocessing,
    output_columns,
    preprocessing_for,
    score_lightcurves,
)

PREPROCESSING_FILE = "preprocessing.json"
MODEL_CODE = Path(__file__).resolve().with_name("mlflow_model.py")
PACKAGE_DIR = Path(__file__).resolve().parents[1]
REQUIREMENTS = ("tensorflow", "keras", "mlflow", "numpy", "pandas", "scikit-learn", "scipy",
                "astropy", "pyarrow", "supersmoother", "tqdm", "pyyaml")
"""Packages the model imports (pinned to the installed versions when it is logged)."""


class VarnetModel(mlflow.pyfunc.PythonModel):
    """The pyfunc wrapper: a Scorer from the artifacts, `score_lightcurves` per request."""

    def load_context(self, context) -> None:
        from varnet.scoring.inference import Scorer

        # MLflow copies every artifact into the model's artifacts/ directory
        self.scorer = Scorer.load(Path(context.artifacts[SERVED_FILES[0]]).parent)
        self.prep = Preprocessing(**json.loads(
            Path(context.artifacts[PREPROCESSING_FILE]).read_text()))

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None
                ) -> pd.DataFrame:
        params = params or {}
        return score_lightcurves(self.scorer, self.prep, model_input,
                                 params.get("level") or "star",
                                 float(params.get("alpha") or DEFAULT_ALPHA))


def signature(percentiles: list[str]) -> ModelSignature:
    """Outputs and params; no input schema, on purpose: MLflow enforces one differently in
    process (it refuses integer times) and over HTTP (it turns JSON booleans into numbers), so
    `score_lightcurves` types the columns itself, one rule for `varnet score` and the server
    (`readers.typed_lightcurve`). The input columns are those of the input example."""
    outputs = [ColSpec("string", "id"), ColSpec("long", "sequence", required=False),
               ColSpec("string", "class", required=False)]
    for name in output_columns(percentiles)[1:]:
        kind = ("boolean" if name.startswith("novel") else "long" if name.startswith("n_")
                else "string" if name in ("period_source", "note") else "double")
        outputs.append(ColSpec(kind, name, required=name not in ("note", "period_source")))
    params = ParamSchema([ParamSpec("level", "string", "star"),
                          ParamSpec("alpha", "double", DEFAULT_ALPHA)])
    return ModelSignature(outputs=Schema(outputs), params=params)


def input_example(prep: Preprocessing) -> pd.DataFrame:
    """One RR Lyrae-like star with 1.5 sequences of points and its catalog period."""
    rng = np.random.default_rng(0)
    n = prep.length * 3 // 2
    time = np.sort(rng.uniform(0.0, 1500.0, n)).round(5)
    period = 0.5671
    mag = 13.2 + 0.35 * np.sin(2 * np.pi * time / period) + rng.normal(0.0, 0.03, n)
    band = prep.bands[0] if prep.bands else DEFAULT_BAND
    return pd.DataFrame({"id": "example-rrab", "time": time, "mag": mag.round(4),
                         "err": np.full(n, 0.03), "band": band, "period": period})


def log_model(model_dir: Path, registered_model: str | None):
    """Log the variant in ``model_dir`` as the pyfunc model "model" of the active run.

    Registers a new version of ``registered_model`` (none if None) and returns the
    ModelVersion (or None).
    """
    model_dir = Path(model_dir)
    folder = ModelFolder(model_dir)
    if missing := folder.missing(SERVED_FILES):
        raise VarnetError(f"{model_dir}: cannot log the model, missing "
                          f"{[path.name for path in missing]}")
    prep = preprocessing_for(model_dir)
    percentiles = list(json.loads(folder.thresholds.read_text())["star"])
    with tempfile.TemporaryDirectory() as tmp:
        prep_file = Path(tmp) / PREPROCESSING_FILE
        prep_file.write_text(json.dumps(asdict(prep), indent=2))
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(MODEL_CODE),
            artifacts={**{name: str(folder.file(name)) for name in SERVED_FILES},
                       PREPROCESSING_FILE: str(prep_file)},
            code_paths=[str(PACKAGE_DIR)],
            signature=signature(percentiles),
            input_example=(input_example(prep), {"level": "star", "alpha": DEFAULT_ALPHA}),
            pip_requirements=[f"{p}=={version(p)}" for p in REQUIREMENTS],
            registered_model_name=registered_model,
        )
    if registered_model is None:
        return None
    return mlflow.MlflowClient().get_model_version(registered_model,
                                                   str(info.registered_model_version))
