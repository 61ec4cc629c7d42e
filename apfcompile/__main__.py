"""``python -m apfcompile`` runs the command line."""

from .cli import console

console()
