import pytest
import torch

from repro.models.self_transformer import FixedPointAttentionConfig, fixed_point_layers
from repro.cost import count_flops
from repro.models.vit import (AdaTapeViT, AdaTapeViTConfig, HaltingViT, HaltingViTConfig, PatchEmbedding, UniversalViT,
                              UniversalViTConfig, ViT, ViTConfig, on_running_tokens, self_vit)
from repro.nn import EncoderBlock
from repro.nn import count_parameters
from repro.seeding import torch_seed

SMALL = dict(image_size=16, patch=4, channels=3, classes=5, width=16, heads=2, layers=3, mlp_hidden=32)


def images(batch: int = 4, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 3, 16, 16, generator=torch.Generator().manual_seed(seed))


def built(cls, config, seed: int = 0):
    with torch_seed(seed):
        return cls(config).eval()


def test_patch_embedding_tokens_are_the_patches_in_raster_order():
    embed = PatchEmbedding(16, 4, 3, 8)
    x = images(2)
    tokens = embed(x)
    assert tokens.shape == (2, 16, 8)
    # Changing the pixels of one patch (row 1, column 2 of the 4 x 4 grid) changes that token only.
    edited = x.clone()
    edited[:, :, 4:8, 8:12] += 1.0
    changed = (embed(edited) - tokens).abs().sum(dim=(0, 2)) > 0
    assert changed.nonzero().flatten().tolist() == [1 * 4 + 2]


def test_patch_embedding_rejects_a_wrong_image_shape():
    with pytest.raises(ValueError, match=r"expected images of shape \(batch, 3, 16, 16\), got \(2, 3, 32, 32\)"):
        PatchEmbedding(16, 4, 3, 8)(torch.zeros(2, 3, 32, 32))
    with pytest.raises(ValueError, match="not a multiple of the patch size"):
        ViTConfig(image_size=30, patch=4)


def test_vit_shapes_and_compute():
    model = built(ViT, ViTConfig(**SMALL))
    logits, aux = model(images(4))
    assert logits.shape == (4, 5)
    assert aux["token_layers"].tolist() == [16.0 * 3] * 4 and aux["attention_evaluations"].tolist() == [3.0] * 4


def test_self_vit_with_one_undamped_step_is_the_vit_of_the_same_weights():
    vanilla = built(ViT, ViTConfig(**SMALL))
    one_step = self_vit(ViTConfig(**SMALL), FixedPointAttentionConfig(damping=1.0, max_iterations=1))
    one_step.load_state_dict(vanilla.state_dict())
    one_step.eval()
    x = images(4)
    assert torch.allclose(one_step(x)[0], vanilla(x)[0], atol=1e-6)
    assert count_parameters(one_step) == count_parameters(vanilla)
    assert one_step.state_dict().keys() == vanilla.state_dict().keys()


def test_self_vit_iterates_and_reports_its_evaluations():
    model = self_vit(ViTConfig(**SMALL), FixedPointAttentionConfig(max_iterations=6, tol=1e-4))
    model.eval()
    logits, aux = model(images(3))
    assert len(fixed_point_layers(model)) == 3
    per_layer = torch.stack([layer.aux.iterations for layer in fixed_point_layers(model)]).sum(dim=0)
    assert torch.equal(aux["attention_evaluations"], per_layer.float()) and (per_layer > 3).all()


@pytest.mark.parametrize("bank", ["input", "learnable"])
def test_adatape_vit_banks_and_the_tape_budget(bank):
    config = AdaTapeViTConfig(vit=ViTConfig(**SMALL), bank=bank, bank_patch=2, bank_size=12, max_tape=6, budget=2.0)
    model = built(AdaTapeViT, config)
    x = images(8)
    if bank == "input":
        assert model.pre_bank(model.bank_embed(x)).shape == (8, (16 // 2) ** 2, 16) and model.bank_grid == 8
    else:
        assert model.bank.shape == (12, 16)
    logits, aux = model(x)
    assert logits.shape == (8, 5)
    # Every image reads at least one and at most max_tape tokens, and each read token merges k = T / tau entries.
    assert ((aux["tape_length"] >= 1) & (aux["tape_length"] <= 6)).all()
    assert torch.equal(aux["selected"].sum(dim=1), aux["tape_length"].float() * 3)
    assert torch.equal(aux["token_layers"], 16.0 * 3 + aux["tape_length"].float() * 2)
    assert (aux["penalty"] > 0).all()


def test_adatape_vit_separate_tape_ffn_adds_one_network_per_block_after_the_tape():
    shared = built(AdaTapeViT, AdaTapeViTConfig(vit=ViTConfig(**SMALL)))
    separate = built(AdaTapeViT, AdaTapeViTConfig(vit=ViTConfig(**SMALL), separate_tape_ffn=True))
    glu = 16 * 2 * 32 + 2 * 32 + 32 * 16 + 16
    assert count_parameters(separate) - count_parameters(shared) == 2 * glu


def test_every_tape_setting_of_the_vit_reaches_its_encoder():
    tape = dict(max_tape=4, budget=1.0, insert_after=2, separate_tape_ffn=True, impurity="max")
    encoder = built(AdaTapeViT, AdaTapeViTConfig(vit=ViTConfig(**SMALL), **tape)).encoder.config
    assert {name: getattr(encoder, name) for name in tape} == tape
    assert (encoder.width, encoder.heads, encoder.layers) == (SMALL["width"], SMALL["heads"], SMALL["layers"])


def test_the_learnable_bank_has_no_image_grid():
    model = built(AdaTapeViT, AdaTapeViTConfig(vit=ViTConfig(**SMALL), bank="learnable"))
    with pytest.raises(ValueError, match="only the input-driven bank"):
        model.bank_grid
    with pytest.raises(ValueError, match="unknown bank 'inputs'"):
        AdaTapeViTConfig(bank="inputs")


def test_universal_vit_ponders_within_its_cap_and_its_penalty_trains_the_halting_unit():
    model = built(UniversalViT, UniversalViTConfig(vit=ViTConfig(**SMALL)))
    model.train()
    logits, aux = model(images(4))
    assert logits.shape == (4, 5)
    assert ((aux["ponder_steps"] >= 1) & (aux["ponder_steps"] <= 3)).all()
    aux["penalty"].sum().backward()
    assert model.halting.weight.grad.abs().sum() > 0


def test_a_halting_vit_that_never_halts_is_the_vit_of_the_same_blocks():
    never = built(HaltingViT, HaltingViTConfig(vit=ViTConfig(**SMALL), gate_center=1e4))
    vanilla = built(ViT, ViTConfig(**SMALL))
    never.load_state_dict(vanilla.state_dict())
    x = images(4)
    logits, aux = never(x)
    assert torch.allclose(logits, vanilla(x)[0], atol=1e-5)
    assert aux["token_layers"].tolist() == [16.0 * 3] * 4


def test_a_halting_vit_that_halts_at_once_spends_one_block_per_token():
    eager = built(HaltingViT, HaltingViTConfig(vit=ViTConfig(**SMALL), gate_center=-1e4))
    _, aux = eager(images(4))
    assert aux["token_layers"].tolist() == [16.0] * 4 and aux["attention_evaluations"].tolist() == [1.0] * 4


def test_halted_tokens_leave_the_keys_of_later_blocks():
    model = built(HaltingViT, HaltingViTConfig(vit=ViTConfig(**SMALL)))
    x = torch.randn(2, 16, 16)
    running = torch.ones(2, 16, dtype=torch.bool)
    running[0, 5] = False
    moved = x.clone()
    moved[0, 5] += 10.0   # a halted token's state no longer reaches the running ones
    assert torch.allclose(model.update(1, x, running)[0, running[0]], model.update(1, moved, running)[0, running[0]],
                          atol=1e-6)
    none_running = torch.zeros_like(running)
    assert torch.isfinite(model.update(1, x, none_running)).all()


def test_the_task_loss_reaches_the_input_driven_bank_through_the_merge_weights():
    model = built(AdaTapeViT, AdaTapeViTConfig(vit=ViTConfig(**SMALL), bank="input", bank_patch=2)).train()
    logits, _ = model(images(4))
    torch.nn.functional.cross_entropy(logits, torch.arange(4) % 5).backward()
    for parameter in (model.bank_embed.project.weight, model.bank_embed.positions, model.pre_bank.weight):
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0


GATHERING = [(HaltingViT, HaltingViTConfig(vit=ViTConfig(**SMALL), gate_center=0.5)),
             (UniversalViT, UniversalViTConfig(vit=ViTConfig(**SMALL))),
             (AdaTapeViT, AdaTapeViTConfig(vit=ViTConfig(**SMALL), max_tape=6, budget=2.0)),
             (AdaTapeViT, AdaTapeViTConfig(vit=ViTConfig(**SMALL), max_tape=6, budget=2.0, separate_tape_ffn=True))]


@pytest.mark.parametrize("cls,config", GATHERING)
def test_the_gathered_computation_equals_the_masked_one_and_costs_no_more(cls, config):
    model = built(cls, config)
    x = images(8)
    for point in ((6, 3) if cls is AdaTapeViT else (0.01, 0.5)):
        model.operating_point = point
        with torch.no_grad():
            gathered, aux = model(x)
            executed = count_flops(lambda: model(x))
            model.gather = False
            masked, masked_aux = model(x)
            nominal = count_flops(lambda: model(x))
            model.gather = True
        assert torch.allclose(gathered, masked, atol=1e-5)
        assert torch.equal(aux["token_layers"], masked_aux["token_layers"]) and executed <= nominal
    if cls is HaltingViT:  # its tokens halt at these settings, so the saving is real
        assert executed < nominal


def block_flops(tokens: int, width: int, hidden: int) -> int:
    """A pre-LN block on `tokens` tokens attending among themselves, by hand: qkv 2 t w 3w, scores and mixing
    2 t t w each, output 2 t w w, MLP 2 t w h twice."""
    return 2 * tokens * width * 3 * width + 4 * tokens * tokens * width + 2 * tokens * width * width \
        + 4 * tokens * width * hidden


def test_running_tokens_alone_are_computed_and_attend_among_themselves():
    with torch_seed(0):
        block = EncoderBlock(8, 2, 16).eval()
    x = torch.randn(3, 6, 8)
    running = torch.tensor([[1, 0, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1], [0, 0, 0, 0, 0, 0]], dtype=torch.bool)
    with torch.no_grad():
        out = on_running_tokens(block, x, running)
        flops = count_flops(lambda: on_running_tokens(block, x, running))
    assert torch.allclose(out[0, [0, 2, 3]], block(x[:1, [0, 2, 3]])[0], atol=1e-6)
    assert torch.allclose(out[1], block(x[1:2])[0], atol=1e-6)
    assert torch.equal(out[~running], x[~running])
    assert flops == block_flops(3, 8, 16) + block_flops(6, 8, 16)
