"""Class names a compile can trust (see :mod:`apfcompile.inputs.labels` for the rule).

:class:`Naming` holds the names a compile was given (``--classes``, or the layout's own file such
as nnU-Net's ``dataset.json``) or the layout's defaults (BTCV, PAIP); it refuses an input whose
labels have no name under ``--strict-labels`` and, once every input is compiled, lists the classes
with their pixel counts and says in one line which labels no name covered.
"""

from __future__ import annotations

from formats import ClassInfo

from ..inputs.labels import describe_labels, name_classes
from ..inputs.layouts import InputItem, LayoutInfo
from .config import DataConfig

__all__ = ["Naming"]


class Naming:
    """Class names for one compile. ``ignore``: the dataset's ignore label (never a class)."""

    def __init__(self, data: DataConfig, info: LayoutInfo, ignore: int | None) -> None:
        self.given: dict[int, str] | None = None
        self.defaults: tuple[str, ...] | None = None
        self.origin = ""
        if data.classes is not None:
            self.given, self.origin = dict(data.classes), "--classes"
        elif info.classes is not None and info.name == "nnunet":
            self.given, self.origin = dict(enumerate(info.classes)), "dataset.json"
        elif info.classes is not None:
            self.defaults = info.classes
        self.layout, self.strict, self.ignore = info.name, data.strict_labels, ignore

    def _named(self) -> dict[int, str]:
        return self.given if self.given is not None else dict(enumerate(self.defaults or ()))

    def refused(self, labels: dict[int, int], item: InputItem) -> str | None:
        """With ``--strict-labels``, the one-line error for an input holding labels no name covers."""
        if not self.strict or not labels:
            return None
        named = self._named()
        unnamed = sorted(k for k in labels if k not in named and k != self.ignore)
        if not unnamed:
            return None
        where = item.masks[0] if item.masks else item.image
        return (
            f"{where}: labels {describe_labels(unnamed)} have no class name ({self._whose()}; --strict-labels); "
            "name them with --classes FILE, or remap them with --label-map"
        )

    def _whose(self) -> str:
        if self.given is not None:
            return f"not in {self.origin}"
        if self.defaults is not None:
            return f"not among the {self.layout} layout's class names (labels 0..{len(self.defaults) - 1})"
        return "no class names given"

    def classes(
        self, per_input: dict[str, dict[int, int]], items: list[InputItem]
    ) -> tuple[tuple[ClassInfo, ...], str | None, list[int]]:
        """(the manifest's classes, a warning line or None, the labels stored as ``label_N`` when a
        name was expected for them) from each input's pixels per label (input source -> counts)."""
        total: dict[int, int] = {}
        first: dict[int, int] = {}  # label -> index of the first input holding it
        for i, it in enumerate(items):
            for k, n in per_input.get(it.source, {}).items():
                total[k] = total.get(k, 0) + n
                first.setdefault(k, i)
        names = name_classes(total, self.given, self.defaults, self.ignore)
        classes = tuple(ClassInfo(k, name, pixels) for k, name, pixels in names.classes)
        named = self._named()
        outside = sorted(k for k in total if k not in named and k != self.ignore)
        if not outside or (self.given is None and self.defaults is None):
            return classes, None, []
        it = items[min(first[k] for k in outside)]
        where = it.masks[0] if it.masks else it.image
        if names.defaults_dropped:
            line = (
                f"labels {describe_labels(outside)} are not among the {self.layout} layout's class names "
                f"(labels 0..{len(self.defaults) - 1}; first in {where}): its names are not used and every "
                "class is stored as label_N; name them with --classes FILE (--strict-labels refuses such inputs)"
            )
        else:
            line = (
                f"labels {describe_labels(outside)} have no class name in {self.origin} (first in {where}): "
                "stored as label_N; name them with --classes FILE (--strict-labels refuses such inputs)"
            )
        return classes, line, list(names.unnamed)
