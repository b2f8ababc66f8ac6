"""Execution backends behind one protocol: process (embedded default), then docker and gce."""
