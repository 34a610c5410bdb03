import pytest
import torch
from torch import nn

from repro.losses import IGNORE, classification_loss, progressive_loss, token_loss


def test_token_loss_is_the_mean_over_the_labelled_tokens_only():
    logits = torch.randn(2, 3, 4, generator=torch.Generator().manual_seed(0))
    targets = torch.tensor([[IGNORE, 1, 2], [3, IGNORE, 0]])
    labelled = targets != IGNORE
    expected = nn.functional.cross_entropy(logits[labelled], targets[labelled])
    assert torch.allclose(token_loss(logits, targets), expected)


class Stub(nn.Module):
    """Returns fixed logits and, optionally, a per-example compute penalty."""

    def __init__(self, logits, penalty=None):
        super().__init__()
        self.logits, self.penalty = logits, penalty

    def forward(self, inputs):
        return self.logits, ({} if self.penalty is None else {"penalty": self.penalty})


def test_classification_loss_adds_the_models_mean_penalty():
    logits, labels = torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 1])
    plain = classification_loss(Stub(logits), (None, labels))
    assert torch.allclose(plain, nn.functional.cross_entropy(logits, labels))
    penalised = classification_loss(Stub(logits, torch.tensor([0.5, 1.5])), (None, labels))
    assert torch.allclose(penalised, plain + 1.0)


def test_progressive_loss_rejects_bad_arguments():
    with pytest.raises(ValueError, match="0 <= alpha <= 1"):
        progressive_loss(4, alpha=1.5)
    with pytest.raises(ValueError, match="max_iterations >= 1"):
        progressive_loss(0, alpha=0.5)
