"""varnet: classify periodic variable stars and flag novel variability (Tsang & Schultz 2019).

Importing the package makes every entry point offline and quiet (the CLI, the tests, the
benchmarks, a served MLflow model): the analytics of Great Expectations, DVC and MLflow are off
unless the environment already says otherwise.
"""

import os

OFFLINE_ENV = {
    "GX_ANALYTICS_ENABLED": "false",
    "DVC_NO_ANALYTICS": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "TF_CPP_MIN_LOG_LEVEL": "2",
}
for _key, _value in OFFLINE_ENV.items():
    os.environ.setdefault(_key, _value)
