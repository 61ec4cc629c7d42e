"""The ``apfcompile`` command line: a thin layer over the library.

Errors that apfcompile raises on purpose (:class:`~apfcompile.errors.APFError`) are printed as
one line, ``apfcompile: error: ...``, with exit status 1; click's own usage errors exit with 2.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps

import click

from . import __version__
from .errors import APFError


def _friendly(fn: Callable) -> Callable:
    """Turn APFError into one line on stderr and exit status 1 (no traceback)."""

    @wraps(fn)
    def run(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except APFError as exc:
            click.echo(f"apfcompile: error: {exc}", err=True)
            sys.exit(1)

    return run


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="apfcompile")
def main() -> None:
    """Compile high-resolution images into adaptive patch sequences, once.

    Each image is cut by an edge-driven quadtree: small leaves where there is detail, large ones
    where there is none; every leaf becomes one p x p patch, and the leaves in Z-order form a
    token sequence short enough for a transformer's attention.
    """


@main.command()
@click.argument("output", required=False, default="apf-demo", type=click.Path(file_okay=False))
@_friendly
def demo(output: str) -> None:
    """Run the core on the bundled real samples and write previews to OUTPUT (./apf-demo).

    Patchifies an H&E tissue crop, a fluorescence nuclei image with its labels and one abdominal
    CT slice with organ labels; prints leaves, leaf sizes, compression ratio (gamma: uniform
    p x p patches / leaves) and the reconstruction ceiling (mean foreground Dice of the mask rebuilt
    from its own patches), and writes one picture per sample: leaf borders, mask, rebuilt mask.
    """
    from .demo import run_demo

    rows = run_demo(output)
    click.echo(f"{'sample':<18} {'image':<18} {'leaves':>6} {'gamma':>7} {'ceiling':>8}  leaf sizes (px: count)")
    for r in rows:
        shape = "x".join(map(str, r.shape)) + f" {r.dtype}"
        ceiling = "-" if r.ceiling is None else f"{100 * r.ceiling:.2f}%"
        sizes = " ".join(f"{s}:{n}" for s, n in r.sizes.items())
        click.echo(f"{r.key:<18} {shape:<18} {r.leaves:>6} {r.gamma:>7.2f} {ceiling:>8}  {sizes}")
    click.echo(f"previews: {', '.join(str(r.preview) for r in rows)}")


if __name__ == "__main__":  # pragma: no cover
    main()
