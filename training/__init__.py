"""Training pipeline for the agegate age classifier: ``python -m training train|evaluate``."""
