"""Runs: the stage-run state machine, planning, the detached pipeline driver and collection."""
