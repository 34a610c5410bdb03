"""Vision-language transformers for notebook 09, built from the ViT's patch embedding and the
pre-LN `repro.nn.EncoderBlock`, so `swap_self_attention` makes the SELF version of either with no
new parameters (the SELF-VLTransformer's architecture is not known; paper notes, section 4.10):

- `FusionEncoder` (single stream, as FLAVA's multimodal encoder and ViLT): one encoder over
  [CLS; w_1..w_m; p_1..p_N] + t, the question's words w (learned positions), the image's patches
  p (their own positions) and a type embedding t per modality; padding words are masked out of
  every key set. answer logits = W LN(h_L,CLS).
- `DualEncoder` (two towers, as CLIP): e_I = norm(W_I LN(mean_i h_i)) over an image tower's
  patches, e_T = norm(W_T LN(mean of the valid h_j)) over a text tower's [CLS; words]; the
  similarity logits are s * e_I e_T^T with a learned scale s = exp(log_scale), capped at 100 as in
  CLIP, and training minimises `contrastive_loss`.

`aux["attention_evaluations"]` (batch,) counts the attention evaluations each example received
(one per vanilla block, the iterations of each fixed-point one), per tower in the dual encoder.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from repro.config import StrictConfig
from repro.models.transformer import TokenEmbedding
from repro.models.vit import Classifier, PatchEmbedding, attention_evaluations
from repro.nn import EncoderBlock

MAX_LOGIT_SCALE = 100.0
"""CLIP clips its learned inverse temperature at 100 so the logits cannot blow up."""


# DEVIATION: [vl-architecture] small same-shaped fusion and dual encoders trained from scratch stand in for
# FLAVA and CLIP (and for the SELF-VLTransformer, whose architecture is not known).
@dataclass
class VisionLanguageConfig(StrictConfig):
    vocab: int
    """Word ids, padding (0) included."""
    max_words: int
    image_size: int = 64
    patch: int = 8
    channels: int = 3
    width: int = 64
    heads: int = 4
    layers: int = 3
    """Blocks of the fusion encoder, and of each tower of the dual encoder."""
    mlp_hidden: int = 128
    dropout: float = 0.0

    RANGES = {"vocab": "[1, inf)", "max_words": "[1, inf)", "image_size": "[1, inf)", "patch": "[1, inf)",
              "channels": "[1, inf)", "width": "[1, inf)", "heads": "[1, inf)", "layers": "[1, inf)",
              "mlp_hidden": "[1, inf)", "dropout": "[0, 1)"}


def _blocks(c: VisionLanguageConfig) -> nn.ModuleList:
    return nn.ModuleList(EncoderBlock(c.width, c.heads, c.mlp_hidden, c.dropout) for _ in range(c.layers))


def _encode(blocks: nn.ModuleList, x: torch.Tensor, key_mask: torch.Tensor | None) -> torch.Tensor:
    for block in blocks:
        x = block(x, key_mask)
    return x


def _words_mask(words: torch.Tensor, word_mask: torch.Tensor) -> torch.Tensor:
    """[CLS; words] key mask, checked: every text needs a word, and padding ids only where masked."""
    if words.shape != word_mask.shape or word_mask.dtype != torch.bool:
        raise ValueError(f"words {tuple(words.shape)} need a boolean mask of the same shape, got "
                         f"{word_mask.dtype} {tuple(word_mask.shape)}")
    if not word_mask.any(dim=1).all():
        raise ValueError("every text needs at least one unmasked word")
    return torch.cat([torch.ones_like(word_mask[:, :1]), word_mask], dim=1)


class FusionEncoder(nn.Module):
    def __init__(self, config: VisionLanguageConfig, answers: int):
        super().__init__()
        self.config = c = config
        self.text = TokenEmbedding(c.vocab, c.max_words, c.width)
        self.image = PatchEmbedding(c.image_size, c.patch, c.channels, c.width)
        self.modality = nn.Parameter(torch.randn(2, c.width) * 0.02)
        self.blocks = _blocks(c)
        self.norm = nn.LayerNorm(c.width)
        self.head = nn.Linear(c.width, answers)

    def forward(self, images: torch.Tensor, words: torch.Tensor, word_mask: torch.Tensor) -> tuple[torch.Tensor, dict]:
        text_mask = _words_mask(words, word_mask)
        patches = self.image(images)
        x = torch.cat([self.text(words) + self.modality[0], patches + self.modality[1]], dim=1)
        key_mask = torch.cat([text_mask, torch.ones(patches.shape[:2], dtype=torch.bool, device=x.device)], dim=1)
        h = _encode(self.blocks, x, key_mask)
        aux = {"attention_evaluations": attention_evaluations(self.blocks, len(images), x.device)}
        return self.head(self.norm(h[:, 0])), aux


class DualEncoder(nn.Module):
    def __init__(self, config: VisionLanguageConfig, embedding: int = 64):
        super().__init__()
        self.config = c = config
        self.image = PatchEmbedding(c.image_size, c.patch, c.channels, c.width)
        self.image_blocks = _blocks(c)
        self.image_projection = Classifier(c.width, embedding)
        self.text = TokenEmbedding(c.vocab, c.max_words, c.width)
        self.text_blocks = _blocks(c)
        self.text_projection = Classifier(c.width, embedding)
        self.log_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))  # CLIP's initial temperature

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """(batch, embedding) unit vectors."""
        return F.normalize(self.image_projection(_encode(self.image_blocks, self.image(images), None)), dim=-1)

    def encode_texts(self, words: torch.Tensor, word_mask: torch.Tensor) -> torch.Tensor:
        """(batch, embedding) unit vectors."""
        mask = _words_mask(words, word_mask)
        return F.normalize(self.text_projection(_encode(self.text_blocks, self.text(words), mask), mask), dim=-1)

    def similarity(self, image_embeddings: torch.Tensor, text_embeddings: torch.Tensor) -> torch.Tensor:
        """(images, texts) logits s * e_I e_T^T."""
        return self.log_scale.exp().clamp(max=MAX_LOGIT_SCALE) * image_embeddings @ text_embeddings.T

    def forward(self, images: torch.Tensor, words: torch.Tensor, word_mask: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """The (batch, batch) logits of every image against every text of a batch of pairs."""
        logits = self.similarity(self.encode_images(images), self.encode_texts(words, word_mask))
        aux = {"image_attention_evaluations": attention_evaluations(self.image_blocks, len(images), images.device),
               "text_attention_evaluations": attention_evaluations(self.text_blocks, len(words), images.device)}
        return logits, aux


def contrastive_loss(logits: torch.Tensor) -> torch.Tensor:
    """CLIP's symmetric InfoNCE over a (batch, batch) image x text logit matrix whose diagonal holds
    the pairs: (CE(rows: image -> its text) + CE(columns: text -> its image)) / 2."""
    if logits.dim() != 2 or logits.shape[0] != logits.shape[1]:
        raise ValueError(f"expected a square (batch, batch) logit matrix of paired images and texts, got "
                         f"{tuple(logits.shape)}")
    targets = torch.arange(len(logits), device=logits.device)
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))  # bf16 under autocast: at least fp32
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2
