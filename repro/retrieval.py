"""Retrieval metrics: recall at k of a similarity matrix."""

import torch


def recall_at_k(similarity: torch.Tensor, positive: torch.Tensor, ks=(1, 5, 10)) -> dict[int, float]:
    """R@k: the fraction of queries (rows of `similarity`, queries x gallery) whose `positive`
    gallery item is among their k most similar. A tie with the positive counts against it, so a
    constant similarity scores chance, not a perfect recall."""
    if similarity.dim() != 2 or positive.shape != (similarity.shape[0],):
        raise ValueError(f"expected (queries, gallery) similarities and one positive per query, got "
                         f"{tuple(similarity.shape)} and {tuple(positive.shape)}")
    score = similarity.gather(1, positive[:, None])
    rank = (similarity >= score).sum(dim=1) - 1  # gallery items at least as similar, the positive excluded
    return {k: (rank < k).float().mean().item() for k in ks}
