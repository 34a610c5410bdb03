"""SQuAD v1.1 for a span extractor: the dev set (the only split available here), a fixed split of
its articles into a training part and a held-out part, sliding-window features, span decoding,
and the official v1.1 metric.

Metric (as the official evaluate-v1.1.py): an answer is normalised by lower-casing, deleting
punctuation, deleting the articles a/an/the and collapsing whitespace; then per question

    EM = max_g [norm(prediction) == norm(g)]
    F1 = max_g 2 P R / (P + R),  P = |common| / |prediction tokens|,  R = |common| / |g tokens|

over its ground truths g, where `common` is the multiset intersection of the whitespace tokens
(F1 = 0 where nothing is shared), both averaged over the questions x 100; a question without a
prediction scores 0.

Decoding: per question, over all its windows, the span (i, j) of context tokens with
i <= j < i + `max_answer_tokens` that maximises start_logit[i] + end_logit[j], mapped back to the
context text through the tokens' character offsets.
"""

import json
import re
import string
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import torch
import torch.nn.functional as F

from repro.data.files import local_or_hub
from repro.seeding import rng

DEV_FILE = "squad/v1.1/dev-v1.1.json"
# DEVIATION: [squad-dev-split] train-v1.1.json is not obtainable offline: the dev set's articles are split into a
# training part and a held-out part instead.
HELD_OUT_ARTICLES = 10
"""Articles of the dev set held out for evaluation; the other 38 are the training part."""
MAX_ANSWER_TOKENS = 30
"""Longest span the decoder may return, in tokens (the usual SQuAD setting)."""
NO_ANSWER = 0
"""Label of a window that does not hold the whole answer: the [CLS] token."""


@dataclass(frozen=True)
class Example:
    """One SQuAD question with its paragraph and its ground-truth answers (texts and character starts)."""
    id: str
    title: str
    context: str
    question: str
    answers: tuple[str, ...]
    answer_starts: tuple[int, ...]


def example(record: dict, origin: str | None = None) -> Example:
    """An `Example` from a record in the hub's layout ({id, title, context, question,
    answers: {text, answer_start}}), or a ValueError naming the record and, where given, its `origin`."""
    answers = record["answers"]
    texts, starts = tuple(answers["text"]), tuple(int(s) for s in answers["answer_start"])
    name = f"SQuAD record {record['id']!r} (article {record['title']!r}{f', {origin}' if origin else ''})"
    if not texts:
        raise ValueError(f"{name} has no answers; every SQuAD v1.1 question has at least one")
    if len(texts) != len(starts):
        raise ValueError(f"{name} has {len(texts)} answer texts but {len(starts)} answer starts")
    context = record["context"]
    for text, start in zip(texts, starts):
        if not text.strip():
            raise ValueError(f"{name} has an empty answer text")
        found = context[start:start + len(text)]
        if found != text:
            raise ValueError(f"{name}: answer {text!r} is not at character {start} of its context "
                             f"(found {found!r} there)")
    return Example(record["id"], record["title"], context, record["question"], texts, starts)


def _member(parent, key: str, kind: type, source: Path, where: str):
    """`parent[key]`, checked to be a `kind`; else a ValueError naming the file, the place and what was expected."""
    words = {list: "a list", dict: "an object", str: "a string", int: "a whole number"}
    if not isinstance(parent, dict):
        raise ValueError(f"{source}: {where} must be a JSON object, got {type(parent).__name__}")
    if key not in parent:
        raise ValueError(f"{source}: {where} has no {key!r} (expected {words[kind]}); it has {sorted(parent)}")
    value = parent[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ValueError(f"{source}: {where}.{key} must be {words[kind]}, got {type(value).__name__} "
                         f"{str(value)[:60]!r}")
    return value


def records_of(document, source: Path) -> Iterable[tuple[str, dict]]:
    """(where, record) for every question of an official SQuAD JSON document read from `source`, flattened into the
    hub's record layout; `where` locates the question in the file ("data[3].paragraphs[0].qas[5]"). The layout is
    checked on the way, each error naming the file, the place and what was expected."""
    for a, article in enumerate(_member(document, "data", list, source, "the document")):
        title = _member(article, "title", str, source, f"data[{a}]")
        for p, paragraph in enumerate(_member(article, "paragraphs", list, source, f"data[{a}]")):
            at = f"data[{a}].paragraphs[{p}]"
            context = _member(paragraph, "context", str, source, at)
            for q, qa in enumerate(_member(paragraph, "qas", list, source, at)):
                where = f"{at}.qas[{q}]"
                identifier = _member(qa, "id", str, source, where)
                question = _member(qa, "question", str, source, f"{where} (question {identifier!r})")
                answers = _member(qa, "answers", list, source, f"{where} (question {identifier!r})")
                texts = [_member(answer, "text", str, source, f"{where}.answers[{n}]")
                         for n, answer in enumerate(answers)]
                starts = [_member(answer, "answer_start", int, source, f"{where}.answers[{n}]")
                          for n, answer in enumerate(answers)]
                yield where, {"id": identifier, "title": title, "context": context, "question": question,
                              "answers": {"text": texts, "answer_start": starts}}


def _dev_from_hub():
    import datasets

    return datasets.load_dataset("rajpurkar/squad", split="validation")


def read_file(path: Path) -> list[Example]:
    """The questions of an official SQuAD v1.1 JSON file, in file order; where the file is not one, a ValueError
    naming it, the place in it and what was expected there."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise ValueError(f"{path} is not UTF-8 text (byte {error.start}); expected a SQuAD JSON file") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}; "
                         'expected the official SQuAD layout {"data": [articles]} (is the file cut short?)') from None
    return [example(record, f"{path}, {where}") for where, record in records_of(document, path)]


def load_dev() -> list[Example]:
    """The 10,570 questions of SQuAD v1.1 dev, from REPRO_DATA_DIR (else the hub), in file order."""
    source = local_or_hub(DEV_FILE, _dev_from_hub, "SQuAD v1.1 dev")
    if isinstance(source, Path):
        return read_file(source)
    return [example(record, "the hub's SQuAD v1.1 validation split") for record in source]


def article_split(titles: Iterable[str], held_out: int = HELD_OUT_ARTICLES) -> tuple[list[str], list[str]]:
    """(training titles, held-out titles): the sorted distinct titles in the order of a permutation
    drawn from the named stream "squad-article-split"; the first `held_out` are held out.

    A pure function of the set of titles, so the split never changes between runs or machines.
    """
    distinct = sorted(set(titles))
    if not 1 <= held_out < len(distinct):
        raise ValueError(f"held_out must be in [1, {len(distinct) - 1}] (there are {len(distinct)} articles), "
                         f"got {held_out}")
    order = [distinct[i] for i in torch.randperm(len(distinct), generator=rng("squad-article-split")).tolist()]
    return sorted(order[held_out:]), sorted(order[:held_out])


def split_by_article(examples: list[Example], held_out: int = HELD_OUT_ARTICLES) -> tuple[list[Example], list[Example]]:
    """(training examples, held-out examples) by `article_split`: no article is in both."""
    _, held_out_titles = article_split([e.title for e in examples], held_out)
    held = set(held_out_titles)
    return [e for e in examples if e.title not in held], [e for e in examples if e.title in held]


def normalize_answer(text: str) -> str:
    """Lower case, no punctuation, no articles (a, an, the), single spaces: the official v1.1 order."""
    text = "".join(ch for ch in text.lower() if ch not in string.punctuation)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_match(prediction: str, truth: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(truth))


def f1(prediction: str, truth: str) -> float:
    """Token-overlap F1 of the normalised answers (module docstring)."""
    predicted, true = normalize_answer(prediction).split(), normalize_answer(truth).split()
    common = sum((Counter(predicted) & Counter(true)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(true)
    return 2 * precision * recall / (precision + recall)


def squad_scores(predictions: dict[str, str], examples: list[Example]) -> dict[str, float]:
    """{"exact_match", "f1"} x 100 over `examples`, each the max over its ground truths; a question
    missing from `predictions` scores 0, as in the official script."""
    if not examples:
        raise ValueError("no examples to score")
    em = f = 0.0
    for e in examples:
        if e.id in predictions:
            em += max(exact_match(predictions[e.id], truth) for truth in e.answers)
            f += max(f1(predictions[e.id], truth) for truth in e.answers)
    return {"exact_match": 100 * em / len(examples), "f1": 100 * f / len(examples)}


@dataclass
class Windows:
    """Sliding windows over the examples' contexts, question first: [CLS] q [SEP] context part [SEP].

    Every tensor shares its first axis (one row per window) and is right-padded to `max_length`.
    """
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    token_type_ids: torch.Tensor
    start_positions: torch.Tensor
    """(windows,): token of the first answer's start, or NO_ANSWER where the answer is not wholly inside."""
    end_positions: torch.Tensor
    example_index: torch.Tensor
    """(windows,): index, in the encoded list, of the example the window belongs to."""
    offsets: torch.Tensor
    """(windows, tokens, 2): character span of each token in its context (meaningful where `context_mask`)."""
    context_mask: torch.Tensor
    """(windows, tokens) bool: the token belongs to the context."""

    def __len__(self) -> int:
        return len(self.input_ids)

    def model_inputs(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(input_ids, attention_mask, token_type_ids): the mask at index 1, as `repro.data.batches` expects."""
        return self.input_ids, self.attention_mask, self.token_type_ids

    def training_batches(self) -> tuple[torch.Tensor, ...]:
        """The model inputs followed by the start and end labels."""
        return (*self.model_inputs(), self.start_positions, self.end_positions)


def check_window(examples: list[Example], tokenizer, max_length: int, stride: int) -> None:
    """A ValueError naming the valid range where a window of `max_length` tokens cannot hold some
    question, its three special tokens and more context tokens than the `stride` it overlaps by."""
    if stride < 0:
        raise ValueError(f"stride must be >= 0, got {stride}")
    if max_length > tokenizer.model_max_length:
        raise ValueError(f"max_length must be at most {tokenizer.model_max_length} (the backbone's positions), "
                         f"got {max_length}")
    lengths = [len(ids) for ids in tokenizer([e.question for e in examples], add_special_tokens=False)["input_ids"]]
    longest = max(range(len(examples)), key=lengths.__getitem__)
    needed = lengths[longest] + 3 + stride + 1
    if max_length < needed:
        raise ValueError(f"max_length {max_length} is too small for stride {stride}: question "
                         f"{examples[longest].id!r} has {lengths[longest]} tokens, so a window needs at least "
                         f"{needed} tokens (question + 3 special tokens + more context tokens than the stride); "
                         f"valid max_length: [{needed}, {tokenizer.model_max_length}]")


def encode(examples: list[Example], tokenizer, max_length: int, stride: int) -> Windows:
    """The windows of every example by the fast tokenizer (`truncation="only_second"`,
    `return_overflowing_tokens`): consecutive windows of one context share `stride` tokens.

    Training labels come from the first answer: its first and last tokens where both lie in the
    window, else NO_ANSWER for both, so the model learns to give such windows a low span score.
    """
    if not examples:
        raise ValueError("no examples to encode")
    check_window(examples, tokenizer, max_length, stride)
    encoded = tokenizer([e.question for e in examples], [e.context for e in examples], truncation="only_second",
                        max_length=max_length, stride=stride, return_overflowing_tokens=True,
                        return_offsets_mapping=True, padding="max_length", return_tensors="pt")
    example_index = encoded["overflow_to_sample_mapping"]
    context_mask = torch.tensor([[s == 1 for s in encoded.sequence_ids(w)] for w in range(len(example_index))])
    offsets = encoded["offset_mapping"]
    begin = torch.tensor([e.answer_starts[0] for e in examples])[example_index]
    end = begin + torch.tensor([len(e.answers[0]) for e in examples])[example_index]
    position = torch.arange(offsets.shape[1]).expand_as(context_mask)
    first, last = offsets[..., 0], offsets[..., 1]
    outside = torch.iinfo(offsets.dtype).max
    inside = ((first.masked_fill(~context_mask, outside).min(dim=1).values <= begin)
              & (last.masked_fill(~context_mask, -1).max(dim=1).values >= end))
    # The token that holds the answer's first character, and the one that holds its last.
    start = position.masked_fill(~(context_mask & (first <= begin[:, None])), -1).max(dim=1).values
    stop = position.masked_fill(~(context_mask & (last >= end[:, None])), offsets.shape[1]).min(dim=1).values
    return Windows(encoded["input_ids"], encoded["attention_mask"], encoded["token_type_ids"],
                   torch.where(inside, start, NO_ANSWER), torch.where(inside, stop, NO_ANSWER), example_index, offsets,
                   context_mask)


def best_spans(start_logits: torch.Tensor, end_logits: torch.Tensor, windows: Windows, examples: list[Example],
               max_answer_tokens: int = MAX_ANSWER_TOKENS, chunk: int = 1024) -> dict[str, str]:
    """{example id: answer text}: the best-scoring span over each example's windows (module docstring).

    The logits are (windows, tokens) for `windows` encoded from `examples`; padding columns may be
    anything, since only context tokens are ever chosen. `chunk` windows are scored at a time.
    """
    if start_logits.shape != end_logits.shape or start_logits.shape != windows.context_mask.shape:
        raise ValueError(f"start and end logits must both have the windows' shape {tuple(windows.context_mask.shape)}, "
                         f"got {tuple(start_logits.shape)} and {tuple(end_logits.shape)}")
    if max_answer_tokens < 1:
        raise ValueError(f"max_answer_tokens must be >= 1, got {max_answer_tokens}")
    # Scores laid out as (window, start i, length k): start[i] + end[i + k], k < max_answer_tokens, so the
    # work grows with the window length times the answer length, not the window length squared.
    width = max_answer_tokens - 1
    end_logits = F.pad(end_logits.float().cpu(), (0, width), value=float("-inf")).unfold(1, max_answer_tokens, 1)
    end_context = F.pad(windows.context_mask, (0, width), value=False).unfold(1, max_answer_tokens, 1)
    scores, flat = [], []
    for begin in range(0, len(windows), chunk):
        part = slice(begin, begin + chunk)
        pair = start_logits[part].float().cpu()[:, :, None] + end_logits[part]
        allowed = windows.context_mask[part, :, None] & end_context[part]
        best = pair.masked_fill(~allowed, float("-inf")).flatten(1).max(dim=1)
        scores.append(best.values)
        flat.append(best.indices)
    scores, flat = torch.cat(scores).tolist(), torch.cat(flat).tolist()
    chosen: dict[int, int] = {}
    for w, i in enumerate(windows.example_index.tolist()):
        if i not in chosen or scores[w] > scores[chosen[i]]:
            chosen[i] = w
    answers = {}
    for i, w in chosen.items():
        start, length = divmod(flat[w], max_answer_tokens)
        characters = slice(int(windows.offsets[w, start, 0]), int(windows.offsets[w, start + length, 1]))
        answers[examples[i].id] = examples[i].context[characters]
    return answers
