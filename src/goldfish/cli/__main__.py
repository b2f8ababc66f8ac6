"""``python -m goldfish.cli``: the same command as the ``goldfish`` console script."""

from goldfish.cli.entry import run

if __name__ == "__main__":
    run()
