"""``python -m apfcompile`` runs the command line."""

from .cli import main

main(prog_name="apfcompile")
