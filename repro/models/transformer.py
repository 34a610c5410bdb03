"""The standard Transformer encoder classifier: the non-adaptive baseline."""

from dataclasses import dataclass

import torch
from torch import nn

from repro.config import StrictConfig
from repro.nn import EncoderBlock


@dataclass
class TransformerConfig(StrictConfig):
    vocab: int
    max_len: int
    classes: int
    width: int = 64
    heads: int = 4
    layers: int = 4
    mlp_hidden: int = 256
    dropout: float = 0.0

    RANGES = {"vocab": "[1, inf)", "max_len": "[1, inf)", "classes": "[1, inf)", "width": "[1, inf)",
              "heads": "[1, inf)", "layers": "[1, inf)", "mlp_hidden": "[1, inf)", "dropout": "[0, 1)"}


class TokenEmbedding(nn.Module):
    """[CLS; tokens] embedded with learned absolute positions (CLS at position 0)."""

    def __init__(self, vocab: int, max_len: int, width: int):
        super().__init__()
        self.tokens = nn.Embedding(vocab, width)
        self.cls = nn.Parameter(torch.zeros(1, 1, width))
        self.positions = nn.Parameter(torch.randn(1, max_len + 1, width) * 0.02)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if tokens.shape[1] > self.positions.shape[1] - 1:
            raise ValueError(f"sequence of {tokens.shape[1]} tokens exceeds max_len {self.positions.shape[1] - 1}")
        x = torch.cat([self.cls.expand(len(tokens), -1, -1), self.tokens(tokens)], dim=1)
        return x + self.positions[:, : x.shape[1]]


class TransformerClassifier(nn.Module):
    """logits = W LN(h_CLS), h = Block_L(...Block_1(Embed([CLS; x]))): L pre-LN blocks."""

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.config = config
        self.embed = TokenEmbedding(config.vocab, config.max_len, config.width)
        self.blocks = nn.ModuleList(EncoderBlock(config.width, config.heads, config.mlp_hidden, config.dropout)
                                    for _ in range(config.layers))
        self.norm = nn.LayerNorm(config.width)
        self.head = nn.Linear(config.width, config.classes)

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, dict]:
        x = self.embed(tokens)
        for block in self.blocks:
            x = block(x)
        compute = torch.full((len(tokens),), float(x.shape[1] * len(self.blocks)), device=tokens.device)
        return self.head(self.norm(x[:, 0])), {"token_layers": compute}
