"""Word-level tokens for the templated English of the vision-language tasks (easy-VQA questions,
Sort-of-CLEVR questions, scene captions).

Their vocabularies are closed (a few dozen words), so a text is split on whitespace and every word
has its own id; a word outside the vocabulary is an error, never a silent unknown token, because in
a templated language it can only mean a template the model was not built for.
"""

from collections.abc import Iterable, Sequence

import torch

PAD = "<pad>"


class Vocabulary:
    """Ids 1.. for the words seen in `texts` (sorted, so the ids do not depend on their order); 0 is padding."""

    def __init__(self, texts: Iterable[str]):
        words = sorted({word for text in texts for word in text.split()})
        if not words:
            raise ValueError("a vocabulary needs at least one word; the texts were empty")
        self.words = (PAD, *words)
        self.ids = {word: i for i, word in enumerate(self.words)}

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, texts: Sequence[str], length: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(ids, mask): (texts, length) word ids right-padded with 0, and True at the real words.

        `length` defaults to the longest text; a longer text is an error, not truncated."""
        split = [text.split() for text in texts]
        longest = max((len(words) for words in split), default=0)
        length = longest if length is None else length
        if longest > length:
            raise ValueError(f"a text has {longest} words, more than the length {length}: "
                             f"{next(t for t, w in zip(texts, split) if len(w) == longest)!r}")
        ids = torch.zeros(len(texts), length, dtype=torch.long)
        for row, (text, words) in enumerate(zip(texts, split)):
            if not words:
                raise ValueError(f"text {row} is empty; every text needs at least one word")
            unknown = [word for word in words if word not in self.ids]
            if unknown:
                raise ValueError(f"words {unknown} of {text!r} are not in the vocabulary of {len(self) - 1} words "
                                 f"({', '.join(self.words[1:])})")
            ids[row, :len(words)] = torch.tensor([self.ids[word] for word in words])
        return ids, ids != 0

    def decode(self, ids: torch.Tensor) -> str:
        """The text of one row of ids, padding dropped."""
        return " ".join(self.words[i] for i in ids.tolist() if i != 0)
