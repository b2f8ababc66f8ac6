"""The web dashboard: read-only pages and a JSON API over the project's services (``goldfish ui``)."""
