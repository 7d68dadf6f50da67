"""`python -m node ...` is the same as `yuxi ...`."""

from node.cli import main

main()
