"""Goldfish: an MCP server that gives AI coding agents ML experiments with memory and provenance."""

__version__ = "0.1.0"
