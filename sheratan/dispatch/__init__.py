"""The dispatch loop: queue, dependencies, decisions, attempts, recovery, learning."""
