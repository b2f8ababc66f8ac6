"""Experiment memory: thoughts, the audit trail and STATE.md."""
