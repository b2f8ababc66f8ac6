"""The process backend: each stage is a local process group (see README.md)."""
