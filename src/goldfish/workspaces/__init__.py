"""Workspaces: copy-based editing slots over the hidden dev repo, and their versions."""
