"""Workers: the kinds they execute, the transports they are reached by."""

#: Defaults of a worker daemon (``worker run --heartbeat``, ``--grace``).
DEFAULT_HEARTBEAT_S = 5.0
DEFAULT_GRACE_S = 30.0
