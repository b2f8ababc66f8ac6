"""``python -m goldfish``: the same command line as the ``goldfish`` console script."""

from goldfish.cli.entry import run

if __name__ == "__main__":
    run()
