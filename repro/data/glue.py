"""GLUE tasks (SST-2, CoLA, MRPC, RTE, STS-B): loading, encoding, and the official metrics.

The TSVs are read from `glue/<task>/{train,dev}.tsv` under REPRO_DATA_DIR, split at every tab
with no quoting (RTE and MRPC sentences hold bare `"` characters; with quoting on, rows silently
merge), every row checked to have the header's number of fields. Where a file is missing the
loader tries the hub (`nyu-mll/glue`), and failing that stops with one error naming the expected path.

Every task becomes the same table: `text_a`, `text_b` (None for single sentences) and `label`
(a class index, or the similarity score for STS-B).

Official metrics (GLUE, Wang et al. 2019): Matthews correlation for CoLA, accuracy and F1 of the
positive class for MRPC, Pearson and Spearman correlation for STS-B, accuracy otherwise. A task's
score is the mean of its metrics (as on the GLUE leaderboard), and the GLUE average is the mean
of the task scores.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from repro.config import choice
from repro.data.files import local_or_hub

SPLITS = ("train", "dev")


@dataclass(frozen=True)
class Task:
    name: str
    hub_config: str
    columns: tuple[str, ...] | None
    """Column names of a header-less TSV (CoLA); None where the file has a header."""
    text_a: str
    text_b: str | None
    label: str
    classes: tuple[str, ...]
    """Label values in class-index order; () for regression (STS-B)."""
    metrics: tuple[str, ...]

    @property
    def outputs(self) -> int:
        """Logits the model needs: one per class, or one score for regression."""
        return len(self.classes) or 1


# DEVIATION: [glue-five-tasks] only these five tasks have train and dev splits in the data directory.
TASKS = {task.name: task for task in (
    Task("SST-2", "sst2", None, "sentence", None, "label", ("0", "1"), ("accuracy",)),
    Task("CoLA", "cola", ("source", "label", "original_label", "sentence"), "sentence", None, "label", ("0", "1"),
         ("mcc",)),
    Task("MRPC", "mrpc", None, "#1 String", "#2 String", "Quality", ("0", "1"), ("accuracy", "f1")),
    # Class order as in the hub's GLUE: entailment = 0.
    Task("RTE", "rte", None, "sentence1", "sentence2", "label", ("entailment", "not_entailment"), ("accuracy",)),
    Task("STS-B", "stsb", None, "sentence1", "sentence2", "score", (), ("pearson", "spearman")),
)}

HUB_COLUMNS = {"sst2": ("sentence", None), "cola": ("sentence", None), "mrpc": ("sentence1", "sentence2"),
               "rte": ("sentence1", "sentence2"), "stsb": ("sentence1", "sentence2")}


def task(name: str) -> Task:
    choice("GLUE task", name, tuple(TASKS))
    return TASKS[name]


def _read_tsv(path: Path, spec: Task) -> pd.DataFrame:
    """The table of a GLUE TSV: lines split at every tab (no quoting), the first line the header unless `spec`
    names the columns. A row with another number of fields than the header, as a file cut mid-line leaves, and a
    bad label are errors that name the file and the line."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise ValueError(f"{path} is not UTF-8 text (byte {error.start}); expected a tab-separated GLUE file") from None
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    if lines[-1] == "":
        lines.pop()  # the newline that ends the last row
    header = spec.columns is None
    if header and not lines:
        raise ValueError(f"{path} is empty; expected a header line naming the columns of {spec.name}")
    columns = lines[0].split("\t") if header else list(spec.columns)
    first_line = 2 if header else 1
    rows = [line.split("\t") for line in lines[header:]]
    for number, fields in enumerate(rows, start=first_line):
        if len(fields) != len(columns):
            raise ValueError(f"{path} line {number}: {len(fields)} tab-separated fields, expected {len(columns)} "
                             f"({', '.join(columns)}); the row is cut short or broken (is the file truncated?)")
    if not rows:
        raise ValueError(f"{path} has no rows" + (" after its header" if header else ""))
    table = pd.DataFrame(rows, columns=columns)
    missing = [c for c in (spec.text_a, spec.text_b, spec.label) if c is not None and c not in table.columns]
    if missing:
        raise ValueError(f"{path}: {spec.name} needs column(s) {missing}; the file has {list(table.columns)}")
    return pd.DataFrame({"text_a": table[spec.text_a],
                         "text_b": table[spec.text_b] if spec.text_b else None,
                         "label": _labels(table[spec.label], spec, path, first_line)})


def _labels(values: pd.Series, spec: Task, path: Path, first_line: int) -> np.ndarray:
    """Class indices (or STS-B scores) of the label column whose first row is line `first_line` of `path`."""
    if not spec.classes:
        scores = pd.to_numeric(values, errors="coerce")
        bad = scores.isna() | (scores < 0) | (scores > 5)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise ValueError(f"{path} line {row + first_line}: row {row} has similarity score {values.iloc[row]}; "
                             "valid: a number in [0, 5]")
        return scores.to_numpy(dtype=np.float32)
    index = {label: i for i, label in enumerate(spec.classes)}
    text = values.str.strip()
    bad = ~text.isin(index)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{path} line {row + first_line}: row {row} has label {text.iloc[row]!r}; "
                         f"valid labels: {list(spec.classes)}")
    return text.map(index).to_numpy(dtype=np.int64)


def _from_hub(spec: Task, split: str) -> pd.DataFrame:
    import datasets

    table = datasets.load_dataset("nyu-mll/glue", spec.hub_config,
                                  split="validation" if split == "dev" else split).to_pandas()
    a, b = HUB_COLUMNS[spec.hub_config]
    return pd.DataFrame({"text_a": table[a], "text_b": table[b] if b else None,
                         "label": table["label"].to_numpy(np.float32 if not spec.classes else np.int64)})


def load(name: str, split: str) -> pd.DataFrame:
    """The `split` ("train" or "dev") of GLUE task `name` as columns text_a, text_b, label."""
    spec = task(name)
    choice("GLUE split", split, SPLITS)
    source = local_or_hub(f"glue/{name}/{split}.tsv", lambda: _from_hub(spec, split), f"GLUE {name} {split}")
    return source if isinstance(source, pd.DataFrame) else _read_tsv(source, spec)


def encode(table: pd.DataFrame, tokenizer, max_length: int) -> tuple[torch.Tensor, ...]:
    """(input_ids, attention_mask, token_type_ids, labels): sentence pairs as [CLS] a [SEP] b [SEP],
    truncated longest-first to `max_length` tokens and right-padded (batches trim the padding)."""
    pairs = (table["text_a"].tolist(),) + ((table["text_b"].tolist(),) if table["text_b"].notna().all() else ())
    encoded = tokenizer(*pairs, truncation=True, max_length=max_length, padding="max_length", return_tensors="pt")
    return (encoded["input_ids"], encoded["attention_mask"], encoded["token_type_ids"],
            torch.tensor(table["label"].to_numpy()))


def matthews_correlation(labels: np.ndarray, predictions: np.ndarray) -> float:
    """MCC of binary predictions; 0 where a row or column of the confusion matrix is empty."""
    tp = float(np.sum((predictions == 1) & (labels == 1)))
    tn = float(np.sum((predictions == 0) & (labels == 0)))
    fp = float(np.sum((predictions == 1) & (labels == 0)))
    fn = float(np.sum((predictions == 0) & (labels == 1)))
    denominator = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return 0.0 if denominator == 0 else (tp * tn - fp * fn) / denominator


def f1_positive(labels: np.ndarray, predictions: np.ndarray) -> float:
    tp = np.sum((predictions == 1) & (labels == 1))
    predicted, actual = np.sum(predictions == 1), np.sum(labels == 1)
    return 0.0 if predicted + actual == 0 else float(2 * tp / (predicted + actual))


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.corrcoef(x, y)[0, 1])


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation of the ranks, ties given their average rank."""
    return pearson(pd.Series(x).rank().to_numpy(), pd.Series(y).rank().to_numpy())


def metrics(name: str, labels, outputs) -> dict[str, float]:
    """The task's official metrics (×100) and its `score` (their mean), from model outputs:
    (examples, classes) logits, or (examples,) / (examples, 1) predicted scores for STS-B."""
    spec = task(name)
    labels, outputs = np.asarray(labels), np.asarray(outputs, dtype=np.float64)
    if spec.classes:
        if outputs.ndim != 2 or outputs.shape != (len(labels), len(spec.classes)):
            raise ValueError(f"{name}: expected logits of shape ({len(labels)}, {len(spec.classes)}), "
                             f"got {outputs.shape}")
        predictions = outputs.argmax(axis=1)
    else:
        predictions = outputs.reshape(len(labels))
    compute = {"accuracy": lambda: float(np.mean(predictions == labels)),
               "f1": lambda: f1_positive(labels, predictions),
               "mcc": lambda: matthews_correlation(labels, predictions),
               "pearson": lambda: pearson(predictions, labels),
               "spearman": lambda: spearman(predictions, labels)}
    values = {metric: 100 * compute[metric]() for metric in spec.metrics}
    return {**values, "score": float(np.mean(list(values.values())))}
