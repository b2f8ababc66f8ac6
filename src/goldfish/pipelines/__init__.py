"""Pipeline definitions: models of pipeline.yaml (parsing and validation build on them)."""
