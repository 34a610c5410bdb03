"""Fixed points z* = f(z*) of a map acting per example on a batch of states (batch, ...).

Solvers (plain or damped iteration, Anderson acceleration) return the iterate, the residual
trace and the step count of every example, and say which examples did not converge; nothing
is hidden behind a silent cap. The stability measures follow the three axes of the looped-
transformer framework:

- reachability: the relative residual ||f(z_T) - z_T|| / ||z_T|| after T plain iterations;
- input-dependence: how far the reached state moves when the input changes a little
  (`sensitivity`), and whether different starting states reach the same point (`path_spread`);
- geometry: the spectral radius rho(J) and spectral norm ||J||_2 of the Jacobian J = df/dz at the
  reached state, by power iteration on Jacobian-vector products (J is never formed).

`stability` takes all of them at once for a map with an injected input, z_{t+1} = F(z_t; e), the
form of a looped transformer's iteration.
"""

from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from repro.device_sync import evaluations_needed, sync_free

Map = Callable[[torch.Tensor], torch.Tensor]
InjectedMap = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""(z, e) -> F(z; e): one iteration from state z with the input's embedding e."""


def flat_norm(x: torch.Tensor) -> torch.Tensor:
    """Euclidean norm of every example of a (batch, ...) tensor, in at least single precision."""
    return x.flatten(1).to(torch.promote_types(x.dtype, torch.float32)).norm(dim=1)


def relative_residual(new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    """||new - old|| / ||old|| per example."""
    return flat_norm(new - old) / flat_norm(old).clamp_min(torch.finfo(torch.float32).tiny)


@dataclass
class FixedPointResult:
    state: torch.Tensor
    """f(z) at the first point whose residual fell under the tolerance; the last f(z) where none did."""
    residuals: torch.Tensor
    """(evaluations, batch): ||f(z) - z|| / ||z|| at every evaluation of f, frozen once converged."""
    steps: torch.Tensor
    """(batch,): evaluations of f until convergence; the evaluation cap where it never converged."""
    converged: torch.Tensor
    """(batch,) bool."""


class _Record:
    """Keeps, per example, the state and step of first convergence while a solver runs on, and says when the solver
    may stop: on the CPU at the first evaluation where every example has converged; where the host must not wait for
    the device (`repro.device_sync`), only at its periodic checks, with the trace cut back to that same evaluation."""

    def __init__(self, z0: torch.Tensor, max_steps: int, tol: float):
        self.tol, self.max_steps = tol, max_steps
        self.state = z0
        self.done = torch.zeros(z0.shape[0], dtype=torch.bool, device=z0.device)
        self.steps = torch.full((z0.shape[0],), max_steps, dtype=torch.long, device=z0.device)
        self.trace: list[torch.Tensor] = []
        self.sync_free = sync_free(z0.device)

    def add(self, evaluation: int, fz: torch.Tensor, residual: torch.Tensor) -> bool:
        """Record f(z) and its residual for the examples still open; True once the solver may stop."""
        open_ = ~self.done
        self.state = torch.where(open_.view(-1, *[1] * (fz.dim() - 1)), fz, self.state)
        self.trace.append(residual if not self.trace else torch.where(open_, residual, self.trace[-1]))
        newly = open_ & (residual < self.tol)
        self.steps = torch.where(newly, evaluation, self.steps)
        self.done |= newly
        if not self.sync_free:
            return bool(self.done.all())
        needed = evaluations_needed(self.steps, evaluation, self.max_steps, self.tol)
        if needed is not None:
            self.trace = self.trace[:needed]
        return needed is not None

    def result(self) -> FixedPointResult:
        return FixedPointResult(self.state, torch.stack(self.trace), self.steps, self.done.clone())


def iterate(f: Map, z0: torch.Tensor, max_steps: int, tol: float = 1e-3, damping: float = 1.0) -> FixedPointResult:
    """z_{t+1} = (1 - a) z_t + a f(z_t); a = `damping` = 1 is plain iteration.

    Runs until every example's residual is under `tol` or `max_steps` evaluations; `tol=0`
    runs all of them (the full trace, as reachability needs).
    """
    if not 0 < damping <= 1:
        raise ValueError(f"damping must be in (0, 1], got {damping}")
    record, z = _Record(z0, max_steps, tol), z0
    for evaluation in range(1, max_steps + 1):
        fz = f(z)
        if record.add(evaluation, fz, relative_residual(fz, z)):
            break
        z = fz if damping == 1 else (1 - damping) * z + damping * fz
    return record.result()


def anderson_coefficients(g: torch.Tensor, regularization: float = 1e-4) -> torch.Tensor:
    """(batch, 1, k): the c minimising ||sum_i c_i g_i||^2 + regularization max_i ||g_i||^2 ||c||^2 subject to
    sum_i c_i = 1, for the residuals g (batch, k, n) of the last k >= 1 iterates."""
    batch, k = g.shape[:2]
    gram = g @ g.transpose(1, 2)
    # Tikhonov term relative to the Gram matrix's scale, so it neither vanishes nor dominates near convergence.
    scale = gram.diagonal(dim1=1, dim2=2).amax(dim=1).clamp_min(torch.finfo(g.dtype).tiny).view(-1, 1, 1)
    # The KKT system of the constrained least squares: [[0, 1^T], [1, G G^T + lambda I]] [mu; c] = [1; 0].
    system = g.new_zeros(batch, k + 1, k + 1)
    system[:, 0, 1:] = system[:, 1:, 0] = 1
    system[:, 1:, 1:] = gram + regularization * scale * torch.eye(k, dtype=g.dtype, device=g.device)
    rhs = g.new_zeros(batch, k + 1, 1)
    rhs[:, 0] = 1
    # solve_ex: `solve` would wait for the device to check for a singular system, which the Tikhonov term rules out.
    return torch.linalg.solve_ex(system, rhs)[0][:, 1:].transpose(1, 2)


def anderson_mix(xs: torch.Tensor, fs: torch.Tensor, regularization: float = 1e-4, mixing: float = 1.0) -> torch.Tensor:
    """The next Anderson iterate (type II, Walker & Ni 2011) from the last k iterates of every example.

    With iterates x_i and their images f(x_i) ((batch, k, n) each), the next iterate is
    x = sum_i c_i (mixing f(x_i) + (1 - mixing) x_i), c the `anderson_coefficients` of the residuals
    g_i = f(x_i) - x_i.
    """
    c = anderson_coefficients(fs - xs, regularization)
    return (c @ (fs if mixing == 1 else mixing * fs + (1 - mixing) * xs))[:, 0]


def anderson(f: Map, z0: torch.Tensor, max_steps: int, tol: float = 1e-3, memory: int = 5,
             regularization: float = 1e-4, mixing: float = 1.0) -> FixedPointResult:
    """Anderson acceleration of z = f(z) per example, with `anderson_mix` over the last `memory` iterates."""
    if memory < 2 or max_steps < 2:
        raise ValueError(f"Anderson needs memory >= 2 and max_steps >= 2, got {memory}, {max_steps}")
    shape = z0.shape
    record = _Record(z0, max_steps, tol)
    xs, fs = [], []
    x = z0.flatten(1)
    for evaluation in range(1, max_steps + 1):
        fx = f(x.view(shape)).flatten(1)
        if record.add(evaluation, fx.view(shape), relative_residual(fx, x)):
            break
        xs, fs = (xs + [x])[-memory:], (fs + [fx])[-memory:]
        x = anderson_mix(torch.stack(xs, 1), torch.stack(fs, 1), regularization, mixing)
    return record.result()


def reachability(f: Map, z0: torch.Tensor, horizons: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """The relative residual ||z_{T+1} - z_T|| / ||z_T|| of plain iteration from z0 at each horizon T.

    Returns ((len(horizons), batch) residuals, z_{max(horizons)+1}): the state one iteration past
    the last horizon, the point the other stability measures are taken at.
    """
    if min(horizons) < 0:
        raise ValueError(f"horizons must be >= 0, got {list(horizons)}")
    result = iterate(f, z0, max_steps=max(horizons) + 1, tol=0.0)
    return result.residuals[list(horizons)], result.state


def sensitivity(z_a: torch.Tensor, z_b: torch.Tensor, e_a: torch.Tensor, e_b: torch.Tensor) -> torch.Tensor:
    """||z*(x_a) - z*(x_b)|| / ||e(x_a) - e(x_b)||: fixed-point change per unit of input change."""
    return flat_norm(z_a - z_b) / flat_norm(e_a - e_b).clamp_min(torch.finfo(torch.float32).tiny)


def path_spread(reached: Sequence[torch.Tensor]) -> torch.Tensor:
    """Largest distance between states reached from different starts, over their mean norm.

    0 means path independence: every start led to the same point.
    """
    if len(reached) < 2:
        raise ValueError("path_spread needs the states reached from at least two starts")
    scale = torch.stack([flat_norm(z) for z in reached]).mean(dim=0).clamp_min(torch.finfo(torch.float32).tiny)
    spread = torch.stack([flat_norm(a - b) for i, a in enumerate(reached) for b in reached[i + 1:]])
    return spread.max(dim=0).values / scale


def jacobian_vector_product(f: Map, z: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """J v with J = df/dz at z, by forward-mode AD (no Jacobian is formed)."""
    # The fused attention kernels have no forward-mode derivative; the math kernel computes the same function.
    with sdpa_kernel(SDPBackend.MATH):
        return torch.func.jvp(f, (z,), (v,))[1]


def _unit(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    norm = flat_norm(v).clamp_min(torch.finfo(torch.float32).tiny)
    return v / norm.view(-1, *[1] * (v.dim() - 1)), norm


def spectral_radius(f: Map, z: torch.Tensor, iterations: int = 100,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """rho(J) per example by Gelfand's formula rho = lim ||J^k v||^(1/k).

    Power iteration on J v, renormalised each step; the estimate is the geometric mean of the
    growth factors over the second half of the iterations, which also converges when the
    dominant eigenvalues are a complex pair (there the single-step growth oscillates).
    """
    v, _ = _unit(torch.randn(z.shape, generator=generator).to(z.device, z.dtype))
    logs = []
    for _ in range(iterations):
        v, growth = _unit(jacobian_vector_product(f, z, v))
        logs.append(growth.log())
    return torch.stack(logs[iterations // 2:]).mean(dim=0).exp()


def spectral_norm(f: Map, z: torch.Tensor, iterations: int = 50,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """||J||_2 per example: power iteration on J^T J with one JVP and one VJP per step."""
    _, pullback = torch.func.vjp(f, z)
    v, _ = _unit(torch.randn(z.shape, generator=generator).to(z.device, z.dtype))
    for _ in range(iterations):
        v, _ = _unit(pullback(jacobian_vector_product(f, z, v))[0])
    return flat_norm(jacobian_vector_product(f, z, v))


@dataclass
class Stability:
    """The three stability axes of z_{t+1} = F(z_t; e), per example (see `stability`)."""

    residuals: torch.Tensor
    """(len(horizons), batch) reachability: the relative residual at each horizon."""
    sensitivity: torch.Tensor
    """(batch,) input-dependence: reached-state change per unit of input-embedding change."""
    path_spread: torch.Tensor
    """(batch,) input-dependence: spread of the states reached from four different starts."""
    spectral_radius: torch.Tensor
    """(jacobian_size,) geometry: rho(dF/dz) at the reached state."""
    spectral_norm: torch.Tensor
    """(jacobian_size,) geometry: ||dF/dz||_2 at the reached state."""

    def medians(self, horizon_names: Sequence[str], tol: float) -> dict[str, float]:
        """Medians over examples, one table row: "residual @<name>" per horizon, "reached @<last name>"
        (the fraction of examples whose last residual is under `tol`), "sensitivity", "path spread",
        "spectral radius" and "spectral norm"."""
        if len(horizon_names) != len(self.residuals):
            raise ValueError(f"{len(self.residuals)} horizons need as many names, got {list(horizon_names)}")
        row = {f"residual @{name}": r.median().item() for name, r in zip(horizon_names, self.residuals)}
        return row | {f"reached @{horizon_names[-1]}": (self.residuals[-1] < tol).float().mean().item(),
                      "sensitivity": self.sensitivity.median().item(), "path spread": self.path_spread.median().item(),
                      "spectral radius": self.spectral_radius.median().item(),
                      "spectral norm": self.spectral_norm.median().item()}


def stability(step: InjectedMap, initial_state: Callable[[torch.Tensor], torch.Tensor], e: torch.Tensor,
              e_edited: torch.Tensor, horizons: Sequence[int], jacobian_size: int, power_iterations: int,
              generator: torch.Generator) -> Stability:
    """All three axes for the inputs e, at z*: the state one iteration past the last horizon T.

    - reachability: `reachability` from z_0 = initial_state(e) at `horizons`;
    - input-dependence: `sensitivity` against `e_edited`, the embeddings of the same inputs after a
      small valid edit, iterated T times from their own initial state; and `path_spread` over four
      starts iterated T + 1 times: z_0, zeros, Gaussian noise at the scale of z*, and another
      example's z* (the batch rolled by one, so the batch needs two examples or more);
    - geometry: `spectral_radius` and `spectral_norm` of dF/dz at z* for the first `jacobian_size`
      examples, with `power_iterations` steps each.
    `generator` draws the noise start and the power iterations' start vectors, in that order.
    """
    if e.shape[0] < 2 or not 1 <= jacobian_size <= e.shape[0]:
        raise ValueError(f"stability needs a batch of >= 2 and 1 <= jacobian_size <= batch; "
                         f"got batch {e.shape[0]}, jacobian_size {jacobian_size}")
    f = lambda z: step(z, e)
    z0 = initial_state(e)
    last = max(horizons)
    residuals, z_star = reachability(f, z0, horizons)
    z_edited = iterate(lambda z: step(z, e_edited), initial_state(e_edited), last, tol=0.0).state
    noise = torch.randn(z0.shape, generator=generator).to(z0) * z_star.norm(dim=-1, keepdim=True).mean()
    starts = [torch.zeros_like(z0), noise, z_star.roll(1, dims=0)]
    spread = path_spread([z_star] + [iterate(f, start, last + 1, tol=0.0).state for start in starts])
    f_subset = lambda z: step(z, e[:jacobian_size])
    z_subset = z_star[:jacobian_size]
    return Stability(residuals, sensitivity(z_star, z_edited, e, e_edited), spread,
                     spectral_radius(f_subset, z_subset, power_iterations, generator),
                     spectral_norm(f_subset, z_subset, power_iterations, generator))
