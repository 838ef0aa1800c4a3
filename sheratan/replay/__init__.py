"""Replay: exact, counterfactual (off-policy estimators) and regression."""

#: The off-policy estimators (``replay --counterfactual --estimator``). Here, not in
#: ``estimators``, so that the CLI lists them without importing numpy.
ESTIMATORS = ("dm", "ips", "snips", "dr")
