import itertools

import pytest
import torch
import torch.nn.functional as F

from repro.models.self_transformer import FixedPointAttentionConfig, fixed_point_aux, swap_self_attention
from repro.models.vision_language import (MAX_LOGIT_SCALE, DualEncoder, FusionEncoder, VisionLanguageConfig,
                                          contrastive_loss)
from repro.nn import count_parameters
from repro.retrieval import recall_at_k
from repro.seeding import torch_seed

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = VisionLanguageConfig(vocab=12, max_words=8, image_size=16, patch=4, width=16, heads=2, layers=2, mlp_hidden=32)


def inputs(batch: int = 3, words: int = 5, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(batch, 3, 16, 16, generator=generator)
    ids = torch.randint(1, SMALL.vocab, (batch, words), generator=generator)
    lengths = torch.tensor([words, words - 2, 1][:batch])
    mask = torch.arange(words)[None] < lengths[:, None]
    return images, ids.masked_fill(~mask, 0), mask


def built(cls, *args, seed: int = 0, fixed_point: FixedPointAttentionConfig | None = None):
    with torch_seed(seed):
        model = cls(SMALL, *args).eval()
    return swap_self_attention(model, fixed_point) if fixed_point else model


def padded(words: torch.Tensor, mask: torch.Tensor, extra: int, filler: int):
    """The same texts with `extra` more masked positions holding `filler` (any id: masked words must not count)."""
    return (torch.cat([words, torch.full((len(words), extra), filler)], dim=1),
            torch.cat([mask, torch.zeros(len(words), extra, dtype=torch.bool)], dim=1))


FIXED_POINT = FixedPointAttentionConfig(tol=1e-4, max_iterations=6)


@pytest.mark.parametrize("fixed_point", [None, FIXED_POINT], ids=["vanilla", "fpsa"])
def test_fusion_encoder_masks_padding(fixed_point):
    model = built(FusionEncoder, 4, fixed_point=fixed_point)
    images, words, mask = inputs()
    logits, _ = model(images, words, mask)
    assert logits.shape == (3, 4)
    for filler in (0, 7):
        longer, longer_mask = padded(words, mask, extra=3, filler=filler)
        torch.testing.assert_close(model(images, longer, longer_mask)[0], logits, atol=1e-5, rtol=1e-5)
    if fixed_point:  # padding stays out of the residual norms too, so every layer stops where it did
        unpadded = fixed_point_aux(model)["iterations"]
        model(images, words, mask)
        assert torch.equal(fixed_point_aux(model)["iterations"], unpadded)


def test_fusion_encoder_reads_both_the_image_and_the_words():
    model = built(FusionEncoder, 4)
    images, words, mask = inputs()
    logits, _ = model(images, words, mask)
    other_images, other_words, _ = inputs(seed=1)
    assert not torch.allclose(model(other_images, words, mask)[0], logits)
    # Change only a real word of the shortest text (length 1): its logits move, the others' do not.
    edited = words.clone()
    edited[2, 0] = edited[2, 0] % (SMALL.vocab - 1) + 1
    moved = (model(images, edited, mask)[0] - logits).abs().sum(dim=1) > 1e-6
    assert moved.tolist() == [False, False, True]


def test_dual_encoder_towers_are_independent_and_masked():
    model = built(DualEncoder, 8)
    images, words, mask = inputs()
    logits, aux = model(images, words, mask)
    assert logits.shape == (3, 3)
    e_images, e_texts = model.encode_images(images), model.encode_texts(words, mask)
    assert e_images.shape == e_texts.shape == (3, 8)
    torch.testing.assert_close(e_images.norm(dim=1), torch.ones(3))
    torch.testing.assert_close(logits, model.log_scale.exp() * e_images @ e_texts.T)
    # An image embedding is a function of that image only; a text embedding ignores its padding.
    torch.testing.assert_close(model.encode_images(images[1:2]), e_images[1:2], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(model.encode_texts(*padded(words, mask, 3, 5)), e_texts, atol=1e-6, rtol=1e-5)
    assert aux["image_attention_evaluations"].tolist() == aux["text_attention_evaluations"].tolist() == [2.0] * 3


def test_the_logit_scale_is_capped_as_in_clip():
    model = built(DualEncoder, 8)
    with torch.no_grad():
        model.log_scale.fill_(10.0)
    e = F.normalize(torch.ones(2, 8), dim=-1)
    torch.testing.assert_close(model.similarity(e, e), torch.full((2, 2), MAX_LOGIT_SCALE))


@pytest.mark.parametrize("cls, args", [(FusionEncoder, (4,)), (DualEncoder, (8,))], ids=["fusion", "dual"])
def test_fixed_point_swap_adds_no_parameter_and_one_undamped_step_is_vanilla(cls, args):
    vanilla = built(cls, *args)
    one_step = built(cls, *args, fixed_point=FixedPointAttentionConfig(damping=1.0, max_iterations=1))
    assert count_parameters(one_step) == count_parameters(vanilla)
    assert one_step.state_dict().keys() == vanilla.state_dict().keys()
    batch = inputs()
    torch.testing.assert_close(one_step(*batch)[0], vanilla(*batch)[0], atol=1e-6, rtol=1e-5)
    iterating = built(cls, *args, fixed_point=FIXED_POINT)
    _, aux = iterating(*batch)
    spent = aux.get("attention_evaluations", aux.get("text_attention_evaluations"))
    assert (spent >= 2).all() and (spent <= 2 * FIXED_POINT.max_iterations).all()


def test_bad_texts_are_rejected():
    model = built(FusionEncoder, 4)
    images, words, mask = inputs()
    with pytest.raises(ValueError, match="at least one unmasked word"):
        model(images, words, torch.zeros_like(mask))
    with pytest.raises(ValueError, match="boolean mask of the same shape"):
        model(images, words, mask.long())
    with pytest.raises(ValueError, match="exceeds max_len 8"):
        model(images, *padded(words, mask, 6, 0))


def test_contrastive_loss_is_symmetric_and_is_clips():
    logits = torch.randn(5, 5, generator=torch.Generator().manual_seed(3))
    targets = torch.arange(5)
    image_to_text = -torch.log_softmax(logits, dim=1)[targets, targets].mean()
    text_to_image = -torch.log_softmax(logits, dim=0)[targets, targets].mean()
    torch.testing.assert_close(contrastive_loss(logits), (image_to_text + text_to_image) / 2)
    # Swapping the roles of images and texts transposes the matrix and leaves the loss unchanged.
    torch.testing.assert_close(contrastive_loss(logits.T), contrastive_loss(logits))
    # Relabelling the pairs (the same permutation of rows and columns) changes nothing either.
    order = torch.tensor([2, 0, 4, 1, 3])
    torch.testing.assert_close(contrastive_loss(logits[order][:, order]), contrastive_loss(logits))
    with pytest.raises(ValueError, match="square"):
        contrastive_loss(torch.zeros(2, 3))


def test_contrastive_loss_gradient_matches_finite_differences():
    logits = torch.randn(4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(5), requires_grad=True)
    assert torch.autograd.gradcheck(contrastive_loss, (logits,))


def test_recall_at_k_against_brute_force_ranking():
    generator = torch.Generator().manual_seed(7)
    similarity = torch.randint(0, 6, (30, 12), generator=generator).float()  # many ties on purpose
    positive = torch.randint(0, 12, (30,), generator=generator)
    ks = (1, 3, 5, 12)
    brute = {k: 0.0 for k in ks}
    for row, target in zip(similarity.tolist(), positive.tolist()):
        ahead = sum(1 for j, value in enumerate(row) if j != target and value >= row[target])
        for k in ks:
            brute[k] += (ahead < k) / len(positive)
    recall = recall_at_k(similarity, positive, ks)
    assert recall == pytest.approx(brute)
    assert recall[12] == 1.0
    # A constant similarity ranks the positive last, never first.
    assert recall_at_k(torch.zeros(4, 10), torch.arange(4), (1, 9, 10)) == {1: 0.0, 9: 0.0, 10: 1.0}
    with pytest.raises(ValueError, match="one positive per query"):
        recall_at_k(similarity, positive[:3])


def test_fusion_encoder_trains_on_a_question_that_needs_the_image():
    """Answer = which of two colours fills the image, asked in one of two phrasings: the loss must fall
    well below log 2, which no model that ignores the image can do."""
    generator = torch.Generator().manual_seed(0)
    model = built(FusionEncoder, 2)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        answers = torch.randint(0, 2, (16,), generator=generator)
        images = torch.where(answers[:, None, None, None].bool(), 1.0, -1.0).expand(16, 3, 16, 16)
        images = images + 0.3 * torch.randn(16, 3, 16, 16, generator=generator)
        words = torch.randint(1, 3, (16, 3), generator=generator)
        loss = F.cross_entropy(model(images, words, torch.ones_like(words, dtype=torch.bool))[0], answers)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert sum(losses[-10:]) / 10 < 0.2 < sum(losses[:5]) / 5


def test_config_rejects_unknown_keys_and_bad_sizes():
    with pytest.raises(ValueError, match="unknown key"):
        VisionLanguageConfig.from_dict({"vocab": 3, "max_words": 4, "widht": 8})
    with pytest.raises(ValueError, match="must be >= 1"):
        VisionLanguageConfig(vocab=3, max_words=0)


def test_every_pair_of_tokens_can_interact_in_the_fusion_encoder():
    """Single stream: a change of any one patch reaches the answer through the CLS token."""
    model = built(FusionEncoder, 4)
    images, words, mask = inputs(batch=1)
    logits, _ = model(images, words, mask)
    for row, column in itertools.product(range(4), repeat=2):
        edited = images.clone()
        edited[..., 4 * row:4 * row + 4, 4 * column:4 * column + 4] += 1.0
        assert not torch.allclose(model(edited, words, mask)[0], logits)
