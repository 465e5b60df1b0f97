"""``python -m kvmcheck``: the command line."""

from kvmcheck.cli import run

if __name__ == "__main__":
    run()
