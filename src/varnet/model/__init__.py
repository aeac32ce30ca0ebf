"""The dual network of Tsang & Schultz (2019): GRU autoencoder, estimation network, GMM.

Importing this package registers the custom layers, so ``keras.models.load_model`` can read a
saved ``model.keras``. Architecture and deviations from the paper: docs/model.md.
"""

from varnet.core.config import ModelParams
from varnet.model.network import (
    AUX_NAMES,
    PHOT_NAMES,
    DualTrainer,
    autoencoder_layers,
    build_network,
    feature_names,
)

__all__ = ["AUX_NAMES", "PHOT_NAMES", "DualTrainer", "ModelParams", "autoencoder_layers",
           "build_network",
           "feature_names"]
