import copy
import math

import pytest
import torch
from torch import nn

from repro.cost import (count_flops, device_of, fit_power_law, forward_cost, length_sweep, reference_encoder,
                        time_forward, training_memory)
from repro.models.self_transformer import FixedPointAttentionConfig, FixedPointSelfAttention, swap_self_attention
from repro.nn import SelfAttention
from repro.seeding import rng, torch_seed

VANILLA = FixedPointAttentionConfig(damping=1.0, max_iterations=1)
CPU = torch.device("cpu")


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_encoder(layers: int = 2) -> nn.Module:
    return reference_encoder(vocab=11, layers=layers, width=16, heads=2, mlp_hidden=32, max_offset=4)


def tokens(batch: int, length: int) -> torch.Tensor:
    return torch.randint(0, 11, (batch, length), generator=rng("cost-tokens", batch, length))


def layer() -> SelfAttention:
    with torch_seed(0):
        return SelfAttention(8, 2)


def spread_inputs() -> torch.Tensor:
    """Four examples on which the undamped loop of `layer()` needs different evaluations: the
    smaller the scale, the flatter the attention and the faster the contraction; at scale 30 the
    attention is sharp and the loop runs to a cap of 10."""
    x = torch.randn(4, 6, 8, generator=rng("cost-inputs"))
    return x * torch.tensor([0.1, 1.0, 3.0, 30.0])[:, None, None]


def fpsa_flops(x: torch.Tensor, config: FixedPointAttentionConfig) -> tuple[int, torch.Tensor]:
    fixed_point = FixedPointSelfAttention(layer(), config)
    with torch.no_grad():
        flops = count_flops(lambda: fixed_point(x))
    return flops, fixed_point.aux.iterations


def test_linear_and_matmul_count_two_m_n_k():
    m, k, n = 5, 7, 3
    linear, x, w = nn.Linear(k, n), torch.randn(m, k), torch.randn(k, n)
    with torch.no_grad():
        assert count_flops(lambda: linear(x)) == 2 * m * n * k
    assert count_flops(lambda: x @ w) == 2 * m * n * k


def test_attention_on_cpu_is_counted():
    batch, heads, length, width = 2, 3, 5, 4
    q = torch.randn(batch, heads, length, width)
    bias = torch.zeros(1, 1, length, length)
    expected = 2 * (2 * batch * heads * length * length * width)  # Q K^T and A V
    assert count_flops(lambda: nn.functional.scaled_dot_product_attention(q, q, q, attn_mask=bias)) == expected


def test_one_undamped_fpsa_iteration_costs_what_vanilla_costs():
    vanilla = tiny_encoder()
    fixed_point = swap_self_attention(copy.deepcopy(vanilla), VANILLA)
    inputs = {"tokens": tokens(3, 9)}
    assert forward_cost(fixed_point, inputs, CPU).flops == forward_cost(vanilla, inputs, CPU).flops > 0
    assert forward_cost(vanilla, inputs, CPU).iterations is None
    assert (forward_cost(fixed_point, inputs, CPU).iterations == 1).all()


def test_fpsa_flops_follow_the_iterations_each_example_ran():
    x = spread_inputs()
    flops, iterations = fpsa_flops(x, FixedPointAttentionConfig(solver="damped", damping=1.0, tol=1e-4, max_iterations=10))
    assert iterations[-1] == 10 and iterations[0] < iterations[1] < 10, iterations
    # Per example: V once, then each evaluation of the map; measured on one example run for 1 and 2 evaluations.
    one, _ = fpsa_flops(x[:1], FixedPointAttentionConfig(solver="damped", damping=1.0, tol=0.0, max_iterations=1))
    two, _ = fpsa_flops(x[:1], FixedPointAttentionConfig(solver="damped", damping=1.0, tol=0.0, max_iterations=2))
    assert flops == len(x) * one + (iterations.sum().item() - len(x)) * (two - one)
    capped, _ = fpsa_flops(x, FixedPointAttentionConfig(solver="damped", damping=1.0, tol=0.0, max_iterations=10))
    assert capped == len(x) * one + (10 - 1) * len(x) * (two - one) > flops


def saved_bytes(gradient: str, iterations: int) -> int:
    # The damped solver: its per-iteration memory is the same tensors each time (Anderson's history saturates at m).
    fixed_point = FixedPointSelfAttention(layer(), FixedPointAttentionConfig(
        solver="damped", damping=1.0, tol=0.0, max_iterations=iterations, gradient=gradient))
    x = torch.randn(2, 6, 8, generator=rng("cost-memory"))
    return training_memory(lambda: fixed_point(x).square().sum(), fixed_point, CPU).saved_bytes


def test_unrolled_memory_grows_with_iterations_and_implicit_memory_does_not():
    unrolled = [saved_bytes("unrolled", n) for n in (1, 2, 4)]
    assert unrolled[0] < unrolled[1] < unrolled[2]
    assert unrolled[2] - unrolled[1] == 2 * (unrolled[1] - unrolled[0])  # every iteration keeps the same tensors
    for gradient in ("implicit", "neumann", "phantom"):
        assert len({saved_bytes(gradient, n) for n in (1, 2, 4)}) == 1, gradient


def test_training_memory_clears_gradients_and_counts_no_parameters():
    linear = nn.Linear(64, 64)
    x = torch.randn(3, 64)
    memory = training_memory(lambda: linear(x).sum(), linear, CPU)
    assert memory.saved_bytes == x.numel() * x.element_size()  # the input, not the 64 x 64 weight
    assert memory.cuda_peak_bytes is None
    assert all(p.grad is None for p in linear.parameters())


def test_power_law_fit_recovers_a_known_exponent():
    lengths = [64, 128, 256, 512, 1024, 2048]
    exact = fit_power_law(lengths, [3e-4 * n ** 1.5 for n in lengths])
    assert exact.slope == pytest.approx(1.5) and exact.prefactor == pytest.approx(3e-4)
    assert exact.stderr < 1e-9
    noise = torch.randn(len(lengths), generator=rng("cost-noise")) * 0.05
    noisy = fit_power_law(lengths, [1e-3 * n ** 1.2 * math.exp(e) for n, e in zip(lengths, noise.tolist())])
    assert 0 < noisy.stderr < 0.1 and abs(noisy.slope - 1.2) < 4 * noisy.stderr


def test_power_law_fit_rejects_bad_input():
    with pytest.raises(ValueError, match="positive"):
        fit_power_law([64, 0, 256], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="at least 3"):
        fit_power_law([64, 128, 128], [1.0, 2.0, 2.1])
    with pytest.raises(ValueError, match="lengths but"):
        fit_power_law([64, 128, 256], [1.0, 2.0])


def test_timing_reports_ordered_quartiles_and_rejects_no_repeats():
    latency = time_forward(lambda: torch.randn(32, 32) @ torch.randn(32, 32), CPU, repeats=5)
    assert 0 < latency.q25 <= latency.median <= latency.q75 and latency.repeats == 5
    with pytest.raises(ValueError, match="repeats"):
        time_forward(lambda: None, CPU, repeats=0)


def test_length_sweep_measures_both_models_and_rejects_bad_lengths():
    vanilla = tiny_encoder(layers=1)
    fixed_point = swap_self_attention(copy.deepcopy(vanilla), FixedPointAttentionConfig(max_iterations=3))
    table = length_sweep(vanilla, fixed_point, lambda n: {"tokens": tokens(1, n)}, [4, 8], CPU, repeats=1, cap=3)
    assert table["length"].tolist() == [4, 8]
    assert (table["FLOPs ratio"] > 1).all() and table["mean iterations"].between(1, 3).all()
    with pytest.raises(ValueError, match="positive"):
        length_sweep(vanilla, fixed_point, lambda n: {"tokens": tokens(1, n)}, [4, 0], CPU, repeats=1)
    with pytest.raises(ValueError, match="no FPSA layers"):
        length_sweep(vanilla, vanilla, lambda n: {"tokens": tokens(1, n)}, [4], CPU, repeats=1)


def test_unknown_or_missing_devices_are_clear_errors():
    with pytest.raises(ValueError, match="unknown device"):
        device_of("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            device_of("cuda")
    assert device_of("cpu") == CPU
