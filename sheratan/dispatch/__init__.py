"""The dispatch loop: queue, dependencies, decisions, attempts, recovery, learning."""

#: The namespace of every simulated job and worker ("" is real work).
SIMULATION = "simulation"
#: The tracking name of a dispatcher not given one (``dispatcher:dispatch``).
DEFAULT_NAME = "dispatch"
