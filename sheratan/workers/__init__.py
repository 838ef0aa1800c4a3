"""Workers: the kinds they execute, the transports they are reached by."""
