# Stage base image (placeholder until the docker backend lands).
# Build offline from any local base that carries python3 and pip:
#   docker build --build-arg BASE=goldfish-debian-python:bookworm -t goldfish-base:latest .
ARG BASE=goldfish-debian-python:bookworm
FROM ${BASE}
RUN useradd --create-home --uid 1000 goldfish
COPY src/goldfish /opt/goldfish/goldfish
ENV PYTHONPATH=/opt/goldfish PYTHONUNBUFFERED=1
USER goldfish
WORKDIR /home/goldfish
