"""Storage of run artifacts: one protocol, a local implementation, and the one module of run paths."""
