"""Secrets: the project's secret store and where a stage's secret values come from."""
