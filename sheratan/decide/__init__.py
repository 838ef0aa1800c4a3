"""The decision engine: candidates, hard gates, UCB-light with a logged random step, Score v1."""
