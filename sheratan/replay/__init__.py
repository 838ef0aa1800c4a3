"""Replay: exact, counterfactual (off-policy estimators) and regression."""
