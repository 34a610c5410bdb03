import numpy as np
import pytest
import torch

from repro.fixed_point import (anderson, anderson_mix, iterate, path_spread, reachability, relative_residual, sensitivity,
                               spectral_norm, spectral_radius, stability)
from repro.seeding import rng


def linear_map(matrix: torch.Tensor, offset: torch.Tensor):
    return lambda z: z @ matrix.T + offset


def contraction(dimension: int = 6, radius: float = 0.8, seed: int = 0):
    generator = rng("contraction", seed)
    matrix = torch.randn(dimension, dimension, generator=generator, dtype=torch.float64)
    matrix *= radius / torch.linalg.eigvals(matrix).abs().max()
    offset = torch.randn(4, dimension, generator=generator, dtype=torch.float64)
    return lambda z: torch.tanh(z @ matrix.T + offset), matrix


def test_anderson_and_plain_iteration_reach_the_same_fixed_point():
    f, _ = contraction()
    z0 = torch.zeros(4, 6, dtype=torch.float64)
    plain, accelerated = iterate(f, z0, max_steps=500, tol=1e-10), anderson(f, z0, max_steps=100, tol=1e-10)
    assert plain.converged.all() and accelerated.converged.all()
    assert torch.allclose(plain.state, accelerated.state, atol=1e-8)
    assert torch.allclose(f(plain.state), plain.state, atol=1e-8)
    assert (accelerated.steps < plain.steps).all()


def test_non_convergence_is_reported_not_hidden():
    angle = torch.tensor(0.3, dtype=torch.float64)
    rotation = torch.stack([torch.stack([angle.cos(), -angle.sin()]), torch.stack([angle.sin(), angle.cos()])])
    result = iterate(linear_map(rotation, torch.zeros(2, dtype=torch.float64)),
                     torch.ones(3, 2, dtype=torch.float64), max_steps=40, tol=1e-6)
    assert not result.converged.any()
    assert (result.steps == 40).all() and result.residuals.shape == (40, 3)
    assert (result.residuals > 0.1).all()


def test_damping_converges_where_plain_iteration_oscillates_away():
    f = linear_map(torch.tensor([[-1.5]], dtype=torch.float64), torch.tensor([1.0], dtype=torch.float64))
    z0 = torch.zeros(1, 1, dtype=torch.float64)
    assert not iterate(f, z0, max_steps=60, tol=1e-8).converged.any()
    damped = iterate(f, z0, max_steps=60, tol=1e-8, damping=0.5)
    assert damped.converged.all() and abs(damped.state.item() - 0.4) < 1e-7


def test_converged_examples_stay_frozen_with_their_own_step_count():
    scales = torch.tensor([[0.1], [0.9]], dtype=torch.float64)
    f = lambda z: scales * z + 1.0
    result = iterate(f, torch.zeros(2, 1, dtype=torch.float64), max_steps=400, tol=1e-6)
    assert result.converged.all() and result.steps[0] < result.steps[1]
    assert result.residuals[-1, 0] == result.residuals[result.steps[0] - 1, 0]


def test_reachability_is_the_residual_of_plain_iteration_at_each_horizon():
    f, _ = contraction()
    z0 = torch.zeros(4, 6, dtype=torch.float64)
    residuals, state = reachability(f, z0, [0, 3, 10])
    z = z0
    for t in range(11):
        if t in (0, 3, 10):
            assert torch.allclose(residuals[[0, 3, 10].index(t)], relative_residual(f(z), z))
        z = f(z)
    assert torch.allclose(state, z)
    assert (residuals[2] < residuals[0]).all()


def test_path_spread_separates_one_attractor_from_two():
    f, _ = contraction()
    starts = [torch.zeros(4, 6, dtype=torch.float64), torch.full((4, 6), 3.0, dtype=torch.float64)]
    assert (path_spread([iterate(f, z, 200, tol=0.0).state for z in starts]) < 1e-8).all()
    bistable = lambda z: torch.tanh(3 * z)
    starts = [torch.full((2, 3), 0.5), torch.full((2, 3), -0.5)]
    assert (path_spread([iterate(bistable, z, 100, tol=0.0).state for z in starts]) > 1.9).all()


def test_sensitivity_is_the_fixed_point_change_per_unit_of_input_change():
    # z* = b / (1 - 0.5) for f(z) = 0.5 z + b: the fixed point moves twice as far as the input.
    b_a, b_b = torch.zeros(3, 4, dtype=torch.float64), torch.randn(3, 4, dtype=torch.float64)
    z_a = iterate(lambda z: 0.5 * z + b_a, torch.zeros_like(b_a), 200, 1e-12).state
    z_b = iterate(lambda z: 0.5 * z + b_b, torch.zeros_like(b_b), 200, 1e-12).state
    assert torch.allclose(sensitivity(z_a, z_b, b_a, b_b), torch.full((3,), 2.0, dtype=torch.float64), atol=1e-8)


@pytest.mark.parametrize("seed", range(4))
def test_spectral_radius_and_norm_match_numpy_on_linear_maps(seed):
    generator = rng("spectral", seed)
    matrix = torch.randn(8, 8, generator=generator, dtype=torch.float64)  # complex dominant pairs are common
    f = linear_map(matrix, torch.zeros(8, dtype=torch.float64))
    z = torch.randn(2, 8, generator=generator, dtype=torch.float64)
    radius = np.abs(np.linalg.eigvals(matrix.numpy())).max()
    norm = np.linalg.norm(matrix.numpy(), 2)
    assert np.allclose(spectral_radius(f, z, iterations=400, generator=generator).numpy(), radius, rtol=0.03)
    assert np.allclose(spectral_norm(f, z, iterations=200, generator=generator).numpy(), norm, rtol=1e-3)


def test_spectral_radius_of_a_nonlinear_map_is_taken_at_the_given_state():
    f, matrix = contraction(dimension=5, radius=0.9)
    z = torch.randn(4, 5, dtype=torch.float64, generator=rng("state"))
    pre = z @ matrix.T + f(torch.zeros_like(z)).atanh()  # the offset, recovered from f(0)
    for example in range(4):
        jacobian = (1 - torch.tanh(pre[example]) ** 2)[:, None] * matrix
        expected = np.abs(np.linalg.eigvals(jacobian.numpy())).max()
        estimate = spectral_radius(f, z, iterations=400, generator=rng("power", example))[example]
        assert abs(estimate.item() - expected) / expected < 0.03


def test_stability_takes_the_three_axes_at_the_reached_state():
    # F(z; e) = 0.5 z + e: one fixed point z* = 2 e, reached from any start, with J = 0.5 I everywhere.
    step = lambda z, e: 0.5 * z + e
    e = torch.randn(4, 3, dtype=torch.float64, generator=rng("e"))
    edited = e + 0.1 * torch.randn(4, 3, dtype=torch.float64, generator=rng("edit"))
    measures = stability(step, lambda e: e, e, edited, horizons=[2, 60], jacobian_size=2, power_iterations=20,
                         generator=rng("stability"))
    assert measures.residuals.shape == (2, 4)
    assert (measures.residuals[0] > 0.01).all() and (measures.residuals[1] < 1e-12).all()
    assert torch.allclose(measures.sensitivity, torch.full((4,), 2.0, dtype=torch.float64), atol=1e-8)
    assert (measures.path_spread < 1e-10).all()
    half = torch.full((2,), 0.5, dtype=torch.float64)
    assert torch.allclose(measures.spectral_radius, half) and torch.allclose(measures.spectral_norm, half)
    row = measures.medians(["short", "long"], tol=1e-3)
    assert row["reached @long"] == 1.0 and row["residual @short"] > 0.01 and row["sensitivity"] == pytest.approx(2.0)
    with pytest.raises(ValueError, match="batch of >= 2"):
        stability(step, lambda e: e, e[:1], edited[:1], [2], 1, 5, rng("s"))
    with pytest.raises(ValueError, match="2 horizons need as many names"):
        measures.medians(["one"], tol=1e-3)


def test_anderson_mix_solves_an_affine_map_from_dimension_plus_one_iterates():
    g = torch.Generator().manual_seed(2)
    matrix, offset = 2 * torch.randn(3, 3, generator=g, dtype=torch.float64), torch.randn(3, dtype=torch.float64, generator=g)
    f = linear_map(matrix, offset)  # far from a contraction: plain iteration diverges, the mix is exact all the same
    xs = torch.randn(2, 4, 3, generator=g, dtype=torch.float64)
    fs = torch.stack([f(xs[:, i]) for i in range(4)], dim=1)
    fixed = torch.linalg.solve(torch.eye(3, dtype=torch.float64) - matrix, offset)
    torch.testing.assert_close(anderson_mix(xs, fs, regularization=0.0), fixed.expand(2, 3), rtol=0, atol=1e-9)

