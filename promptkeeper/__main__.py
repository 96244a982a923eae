"""`python -m promptkeeper`: the CLI, for hosts that start a command by interpreter and module."""

from promptkeeper.cli import main

main()
