"""`python -m pgqueue` is the `pgqueue` command."""

from pgqueue.cli import entry_point

entry_point()
