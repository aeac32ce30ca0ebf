"""The code of the logged MLflow model ("models from code"): MLflow runs this file on load.

It only names the model object; everything it does is in `varnet.scoring.pyfunc`.
"""

import mlflow

from varnet.scoring.pyfunc import VarnetModel

mlflow.models.set_model(VarnetModel())
