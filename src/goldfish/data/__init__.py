"""Data sources: registered datasets and promoted run outputs."""
