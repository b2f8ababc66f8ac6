"""The docker backend: each stage attempt is a container on the local Docker engine (see README.md)."""
