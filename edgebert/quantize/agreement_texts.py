"""Which texts the int8 vs fp32 agreement check runs on: the user's own, whenever the command has some.

Agreement with fp32 is a fidelity check, and fidelity depends on the inputs: a topic model's margins
on English movie snippets say little about its margins on its own texts. So the check uses, in order,
``--data`` (the user's labelled held-out texts), ``--calibration`` (the user's texts; with ``--mode
static`` they also set the scales, so the record says ``overlaps_calibration``), a build's
``[evaluation] data`` (labels unused), and only otherwise the built-in validation split. Every message
names the texts ("200 texts of data.csv" / "200 built-in validation texts").
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..data import load_builtin
from ..data.datasets import BUILTIN_LABELS, load_texts

SPLIT = "validation"
SOURCE = f"builtin:rt-snippets/{SPLIT}"


@dataclass(frozen=True)
class AgreementTexts:
    texts: tuple[str, ...]
    source: str              # the file's path, or ``SOURCE``
    origin: str              # the option that named it: --data, --calibration, [evaluation] data, built-in
    overlaps_calibration: bool = False

    @property
    def builtin(self) -> bool:
        return self.source == SOURCE

    @property
    def label(self) -> str:
        """"200 texts of data.csv" or "200 built-in validation texts": what messages call them."""
        n = len(self.texts)
        return f"{n} built-in {SPLIT} texts" if self.builtin else f"{n} texts of {Path(self.source).name}"


def source_of(settings) -> tuple[str, Path | None, str]:
    """(origin, file or None for the built-in split, text column) for ``QuantizeSettings``."""
    for origin, path, column in (("--data", settings.data, settings.text_column),
                                 ("--calibration", settings.calibration, settings.text_column),
                                 ("[evaluation] data", settings.agreement_data, settings.agreement_text_column)):
        if path is not None:
            return origin, Path(path), column
    return "built-in", None, "text"


def load(settings, n: int) -> AgreementTexts:
    """The first ``n`` texts of the chosen source (a user file: its first ``n`` rows in file order)."""
    origin, path, column = source_of(settings)
    if path is None:
        return AgreementTexts(load_builtin(SPLIT).texts[:n], SOURCE, origin)
    texts = tuple(load_texts(path, column)[:n])
    overlap = origin == "--calibration" and settings.mode == "static"
    return AgreementTexts(texts, str(path), origin, overlaps_calibration=overlap)


def data_hint(model: dict, texts: AgreementTexts) -> str | None:
    """A suggestion to pass ``--data`` when the built-in sentiment texts judged a model of other labels."""
    if not texts.builtin:
        return None
    id2label = {int(k): str(v) for k, v in (model.get("id2label") or {}).items()}
    if not id2label and model.get("num_labels") is not None:
        id2label = {i: f"LABEL_{i}" for i in range(int(model["num_labels"]))}
    if not id2label or {i: v.lower() for i, v in id2label.items()} == BUILTIN_LABELS:
        return None
    names = [id2label[i] for i in sorted(id2label)]
    shown = ", ".join(names[:5]) + (f", ... ({len(names)} labels)" if len(names) > 5 else "")
    return (f"the built-in texts are English movie reviews ({', '.join(BUILTIN_LABELS.values())}) and this model's "
            f"labels are {shown}: pass --data YOUR.csv to check on your own texts")
