"""The deviations log: every departure from a paper, with the reason.

Each id here is named in brackets by a `DEVIATION:` comment at the code that departs, and by the
result entries of the claims it affects; `tests/test_deviations.py` keeps the two in step.
The report prints this table as its deviations log.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Deviation:
    paper: str
    what: str
    why: str


DEVIATIONS: dict[str, Deviation] = {
    "adatape-softmax-ce": Deviation(
        "AdaTape",
        "Softmax cross-entropy for every parity model instead of the release's sigmoid cross-entropy "
        "over one-hot labels.",
        "All four parity models share one task loss so that only the architecture differs; for two "
        "classes both losses have the same minimiser."),
    "adatape-masked-mean": Deviation(
        "AdaTape",
        "The classifier averages over valid tokens only; the official GAP also averages padded tape "
        "slots (which still hold merged tokens read after the sample halted).",
        "Otherwise the classifier would see tape tokens beyond the halting point and the tape length "
        "would not bound what the model reads."),
    "adatape-parity-scale": Deviation(
        "AdaTape",
        "Parity model sizes, tape length T, budget tau, optimiser and training length are our choices.",
        "No parity configuration was released (paper notes, section 3)."),
    "parity-baseline-tokens": Deviation(
        "AdaTape",
        "The Transformer and Universal Transformer baselines read one token per parity element with "
        "learned position embeddings; AdaTape follows the release (one token for the whole vector, "
        "the per-element embeddings as its bank).",
        "The baselines' parity input is not described anywhere reachable; one token per element is "
        "the standard encoding and gives them the most direct view of the input."),
}
