"""Traitor: a distributed timing-task service whose jobs are JavaScript programs."""

__version__ = "0.1.0"
