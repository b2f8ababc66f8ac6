# The stage base image: python3 + pip + a non-root user (uid 1000). The docker backend builds
# each stage image on top of it (goldfish runtime + a requirements.txt layer, see
# src/goldfish/backends/docker/images.py); stages run as a non-root user with their inputs
# read-only. Nothing here needs the network or the build context:
#   docker build --build-arg BASE=goldfish-debian-python:bookworm -t goldfish-base:latest - < Dockerfile
# BASE is any local image with python3 and pip (Debian's python3-pip, python:3.x-slim, ...);
# scripts/ensure-docker.sh makes goldfish-debian-python:bookworm offline-style with debootstrap.
# manage_base_images(action="build") runs the same build through the Docker engine.
ARG BASE=goldfish-debian-python:bookworm
FROM ${BASE}
RUN set -e; \
    python3 -m pip --version; \
    if ! getent passwd 1000 >/dev/null; then useradd --create-home --uid 1000 --user-group goldfish; fi
ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
LABEL org.goldfish.base-image="1"
USER 1000
WORKDIR /tmp
