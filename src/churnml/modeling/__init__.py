"""The model: design matrix and booster, training search, calibration, baselines, the leakage
probe, evaluation and its plots, the champion gate, MLflow tracking and run provenance.
Imports only `churnml.data` and `churnml.features`."""
