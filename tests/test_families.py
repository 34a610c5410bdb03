"""The six adaptive families of `repro.models.families` on one backbone: shapes, bad input, what each family's
mechanism computes, that the compute counted is the compute spent, and that gradients are right."""

import math

import pytest
import torch
import torch.nn.functional as F

from repro.cost import count_flops
from repro.losses import IGNORE
from repro.models.families import FAMILIES, KNOBS, AdaptiveFamily, FamilyConfig, family_loss
from repro.seeding import torch_seed

# A 3x3 grid: every position labelled by its row and its column.
GRID = (tuple(i // 3 for i in range(9)), tuple(i % 3 for i in range(9)))
SMALL = dict(width=16, heads=2, mlp_hidden=24, layers=2, depth=4, max_offset=4, max_tape=8)


def family(name: str, perturb: bool = True, **overrides) -> AdaptiveFamily:
    """A tiny model of family `name` (token inputs on a line unless overridden), weights moved off their
    initialisation (except the ACT halting unit, whose initial bias is under test) so no identity passes by luck."""
    config = dict(family=name, vocab=3, outputs=2) | SMALL | overrides
    with torch_seed(0):
        model = AdaptiveFamily(FamilyConfig(**config))
    if perturb:
        with torch.no_grad(), torch_seed(1):
            for key, parameter in model.named_parameters():
                if not key.startswith("halting"):
                    parameter.add_(0.1 * torch.randn_like(parameter))
    return model


def tokens(batch: int = 5, positions: int = 9, seed: int = 2) -> torch.Tensor:
    return torch.randint(0, 3, (batch, positions), generator=torch.Generator().manual_seed(seed))


# -- shapes ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", FAMILIES)
def test_every_family_reads_a_line_of_tokens_per_token_or_pooled(name):
    """Token readout: one logit vector per input position (tape slots never read out), pooled: one per example; any
    line length runs (the relative bias has no table size), so a longer split is an extrapolation, not an error."""
    for positions in (7, 12):
        x = tokens(positions=positions)
        assert family(name, outputs=3)(x)[0].shape == (5, positions, 3)
        assert family(name, outputs=3, readout="pooled")(x)[0].shape == (5, 3)


@pytest.mark.parametrize("name", FAMILIES)
def test_every_family_reads_a_grid_of_tokens_or_of_patches(name):
    """A grid has a structure embedding instead of the bias; patches (float features) go through a linear input."""
    x = tokens(positions=9)
    assert family(name, structure=GRID)(x)[0].shape == (5, 9, 2)
    patches = torch.randn(4, 9, 12)
    assert family(name, vocab=0, patch_dim=12, structure=GRID, readout="pooled")(patches)[0].shape == (4, 2)
    assert family(name, vocab=0, patch_dim=12, structure=GRID)(patches)[0].shape == (4, 9, 2)


# -- bad input ------------------------------------------------------------------------------------------------------

def test_exactly_one_kind_of_input_and_patches_need_a_structure():
    for inputs in (dict(vocab=3, patch_dim=12), dict(vocab=0, patch_dim=0)):
        with pytest.raises(ValueError, match="exactly one of vocab"):
            FamilyConfig(family="act", outputs=2, **inputs)
    with pytest.raises(ValueError, match="patch inputs need a structure"):
        FamilyConfig(family="act", outputs=2, patch_dim=12)
    with pytest.raises(ValueError):
        FamilyConfig(family="lstm", outputs=2, vocab=3)


@pytest.mark.parametrize("name", FAMILIES)
def test_an_unknown_knob_is_an_error_naming_the_valid_ones(name):
    """Each family takes only its own test-time settings: a loop's knob passed to AdaTape (or any knob to the
    transformer) must not be silently ignored, and the message lists what the family does take."""
    wrong = "tape" if name != "adatape" else "iterations"
    with pytest.raises(ValueError, match="has no test-time setting") as error:
        family(name)(tokens(), **{wrong: 2})
    assert str(list(KNOBS[name])) in str(error.value)


def test_act_caps_and_loop_iterations_out_of_range_are_errors():
    x = tokens()
    act = family("act")
    for steps in (0, SMALL["depth"] + 1):
        with pytest.raises(ValueError, match="max_steps must lie in"):
            act(x, max_steps=steps)
    for name in ("fixed loop", "recall loop"):
        with pytest.raises(ValueError, match="iterations must be >= 1"):
            family(name)(x, iterations=0)


@pytest.mark.parametrize("name", FAMILIES)
def test_a_structured_model_refuses_a_wrong_number_of_positions(name):
    """The structure labels 9 positions: 8 or 10 positions would silently mislabel every cell."""
    model = family(name, structure=GRID)
    for positions in (8, 10):
        with pytest.raises(ValueError, match="structure labels 9 positions"):
            model(tokens(positions=positions))


# -- loops ----------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["fixed loop", "recall loop"])
def test_a_loop_is_k_applications_of_its_step(name):
    """`iterations=k` is exactly k steps from the initial state, then the readout (the form the progressive loss
    drives); the default is the trained depth."""
    model = family(name)
    x = tokens()
    e = model.embed(x)
    z = model.initial_state(e)
    for k in range(1, 2 * SMALL["depth"] + 1):
        z = model.step(z, e)
        assert torch.allclose(model(x, iterations=k)[0], model.readout(z), atol=1e-6)
    assert torch.equal(model(x)[0], model(x, iterations=SMALL["depth"])[0])
    assert not torch.allclose(model(x, iterations=1)[0], model(x, iterations=2)[0], atol=1e-4)


# -- FPSA -----------------------------------------------------------------------------------------------------------

def test_fpsa_capped_at_one_evaluation_is_the_transformer_with_the_same_weights():
    """FPSA's first evaluation is g(u_0 = x) = W_O A(x) V, vanilla attention, and the cap stops it there
    (`FixedPointAttentionConfig.max_iterations`: "1 is vanilla attention"); FPSA adds no parameter and keeps the
    state-dict keys, so a transformer's weights load unchanged. At the default solver the output does move."""
    transformer, fpsa = family("transformer"), family("fpsa", perturb=False)
    assert set(fpsa.state_dict()) == set(transformer.state_dict())
    fpsa.load_state_dict(transformer.state_dict())
    x = tokens()
    expected = transformer(x)[0]
    for mode in (fpsa.eval, fpsa.train):
        mode()
        assert torch.allclose(fpsa(x, max_iterations=1)[0], expected, atol=1e-5)
        assert torch.allclose(fpsa(x, max_iterations=1, tol=0.0)[0], expected, atol=1e-5)
    assert (fpsa(x)[0] - expected).abs().max() > 1e-4


# -- AdaTape --------------------------------------------------------------------------------------------------------

def test_adatape_grouped_by_tape_length_equals_the_padded_masked_batch():
    """Outside training the examples are grouped by tokens read and the unread slots are never computed; in training
    the tape is padded to the limit and the unread slots are masked out of the keys. With no dropout the two paths
    are the same function of the inputs: only the compute differs. The batch must read several tape lengths."""
    for readout in ("token", "pooled"):
        model = family("adatape", readout=readout)
        x = tokens(batch=12)
        model.eval()
        grouped, aux = model(x)
        model.train()
        padded, aux_train = model(x)
        assert len(aux["tape"].unique()) >= 2
        assert torch.equal(aux["tape"], aux_train["tape"])
        assert torch.allclose(grouped, padded, atol=1e-5)


def test_adatape_reads_at_most_its_tape_knob_and_one_token_at_tape_one():
    model = family("adatape").eval()
    x = tokens(batch=12)
    for tape in range(1, SMALL["max_tape"] + 1):
        _, aux = model(x, tape=tape)
        assert aux["tape"].shape == (12,) and (aux["tape"] >= 1).all() and (aux["tape"] <= tape).all()
        assert (aux["penalty"] >= 0).all()
    assert torch.equal(model(x, tape=1)[1]["tape"], torch.ones(12))
    with pytest.raises(ValueError, match="limit must lie in"):
        model(x, tape=SMALL["max_tape"] + 1)


# -- ACT ------------------------------------------------------------------------------------------------------------

def test_act_halting_starts_at_one_over_depth():
    """The halting bias is set so the initial h = sigmoid(bias) = 1 / depth: ACT starts by using its steps."""
    for depth in (2, 4, 8):
        model = family("act", perturb=False, depth=depth)
        assert abs(torch.sigmoid(model.halting.bias).item() - 1 / depth) < 1e-6


def test_act_spends_at_most_its_cap_and_pays_a_non_negative_penalty():
    model = family("act")
    with torch.no_grad():
        model.halting.bias.fill_(-0.5)   # h around 0.4: positions halt at different steps
    x = tokens(batch=8)
    for cap in range(1, SMALL["depth"] + 1):
        _, aux = model(x, max_steps=cap)
        assert aux["steps"].shape == (8,)
        assert (aux["steps"] >= 1).all() and (aux["steps"] <= cap).all()
        assert aux["penalty"].shape == (8,) and (aux["penalty"] >= 0).all()
    assert torch.equal(model(x, max_steps=1)[1]["steps"], torch.ones(8))


# -- compute counted --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["fixed loop", "recall loop"])
def test_loop_flops_are_affine_in_the_iterations(name):
    """Every iteration runs the same block on the same shapes: FLOPs(k) = a + b k with b > 0, exactly."""
    model = family(name)
    x = tokens()
    with torch.no_grad():
        flops = {k: count_flops(lambda: model(x, iterations=k)) for k in (1, 2, 3, 4, 8)}
    slope = flops[2] - flops[1]
    assert slope > 0
    for k in (3, 4, 8):
        assert flops[k] - flops[1] == (k - 1) * slope


def test_adatape_flops_never_rise_when_the_tape_is_cut():
    """At eval an unread slot is never computed, so a smaller tape limit can only cost less."""
    model = family("adatape").eval()
    x = tokens(batch=12)
    with torch.no_grad():
        flops = [count_flops(lambda: model(x, tape=t)) for t in range(1, SMALL["max_tape"] + 1)]
    assert all(low <= high for low, high in zip(flops, flops[1:]))
    assert flops[0] < flops[-1]


def test_act_flops_fall_with_the_step_cap():
    model = family("act")
    x = tokens()
    with torch.no_grad():
        one, full = (count_flops(lambda: model(x, max_steps=cap)) for cap in (1, SMALL["depth"]))
    assert 0 < one < full


# -- gradients ------------------------------------------------------------------------------------------------------

def loss_at(model: AdaptiveFamily, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    logits, aux = model(x)
    return family_loss(model, logits, aux, targets)


def loss_in_float64(model: AdaptiveFamily, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """`family_loss`'s formula without its cast of the logits to float32."""
    logits, aux = model(x)
    if model.config.readout == "token":
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=IGNORE)
    else:
        loss = F.cross_entropy(logits, targets)
    return loss + aux["penalty"].mean() if "penalty" in aux else loss


@pytest.mark.parametrize("name, overrides", [
    ("recall loop", {}),
    ("recall loop", dict(readout="pooled")),
    ("act", dict(penalty_weight=0.1)),
    ("act", dict(penalty_weight=0.1, readout="pooled", structure=GRID)),
])
def test_family_loss_gradient_matches_a_central_difference(name, overrides, one_thread):
    """In float64 the backward gradient of `family_loss` (task loss plus the weighted ACT ponder cost) with respect
    to single weight entries equals a central difference. `family_loss` takes the cross-entropy of float32 logits
    (`.float()`, for mixed precision), so a difference of its values at h = 1e-6 would drown in float32 rounding:
    the difference is taken on the same formula in float64, checked equal to `family_loss` to float32 precision.
    ACT's halting steps are piecewise constant: the check holds them fixed at both perturbed points, else the
    difference would straddle a jump."""
    model = family(name, **overrides).double()
    if name == "act":
        with torch.no_grad():
            model.halting.bias.fill_(-0.5)
    x = tokens(batch=4)
    targets = torch.randint(0, 2, (4,) if model.config.readout == "pooled" else (4, 9),
                            generator=torch.Generator().manual_seed(3))
    if model.config.readout == "token":
        targets[:, 0] = IGNORE
    entries = [(model.blocks[0].attention.qkv.weight, (3, 5)), (model.blocks[0].mlp.net[0].weight, (1, 2)),
               (model.head[1].weight, (0, 4))]
    if name == "act":
        entries += [(model.halting.weight, (0, 2)), (model.step_embedding, (1, 3))]
        assert len(model(x)[1]["steps"].unique()) >= 2   # positions halt at different steps
    else:
        entries += [(model.recall.project.weight, (2, 7))]
    model.zero_grad()
    loss = loss_at(model, x, targets)
    loss.backward()
    assert abs(loss.item() - loss_in_float64(model, x, targets).item()) < 1e-6
    h = 1e-6
    for parameter, index in entries:
        analytic = parameter.grad[index].item()
        values, steps = [], []
        with torch.no_grad():
            for sign in (1, -1):
                parameter[index] += sign * h
                values.append(loss_in_float64(model, x, targets).item())
                if name == "act":
                    steps.append(model(x)[1]["steps"])
                parameter[index] -= sign * h
        if steps:
            assert torch.equal(steps[0], steps[1])
        numeric = (values[0] - values[1]) / (2 * h)
        assert numeric != 0
        assert abs(analytic - numeric) <= 1e-4 * abs(numeric), (parameter.shape, index, analytic, numeric)


def test_a_float64_model_reads_float64_patches():
    """Patch inputs are cast to the input layer's dtype, so a float64 model (the finite-difference tests) reads them."""
    model = family("act", vocab=0, patch_dim=12, structure=GRID, readout="pooled").double()
    logits, _ = model(torch.randn(2, 9, 12, dtype=torch.float64))
    assert logits.dtype == torch.float64


@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize("inputs", ["line", "grid", "patches"])
def test_every_parameter_gets_a_gradient_from_one_backward(name, inputs):
    """No parameter of any family is dead weight under its training loss in training mode: each gets a gradient,
    none of them all zero. (No exception was needed: ACT's timestep embedding gets a dense gradient through
    indexing, its unused rows only zeros, and the model runs every row here since h starts at 1 / depth; FPSA's
    hook-based adjoint still reaches Q, K and V; AdaTape's padded path reaches the reader's norm through the tape.)"""
    options = {"line": {}, "grid": dict(structure=GRID),
               "patches": dict(vocab=0, patch_dim=12, structure=GRID, readout="pooled")}[inputs]
    model = family(name, **options).train()
    x = torch.randn(4, 9, 12) if inputs == "patches" else tokens(batch=4)
    targets = torch.randint(0, 2, (4,) if model.config.readout == "pooled" else (4, 9),
                            generator=torch.Generator().manual_seed(3))
    loss_at(model, x, targets).backward()
    missing = [key for key, p in model.named_parameters() if p.grad is None]
    zero = [key for key, p in model.named_parameters() if p.grad is not None and not p.grad.abs().sum() > 0]
    assert missing == [] and zero == []
    assert math.isfinite(sum(p.grad.abs().sum().item() for p in model.parameters()))
