"""`python -m promptkeeper.cli`: how tests and benchmarks start the command with this interpreter."""

from promptkeeper.cli import main

main()
