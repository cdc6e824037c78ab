"""What ``train.py`` runs: instantiate + fit, callbacks, interruption/NaN safety, exact resume, preflight, sweeps."""
