"""SELF-Transformer's fixed-point self-attention (FPSA): the attention alignment is refined by a
fixed-point iteration, with no new parameters, as a drop-in for the attention of a Hugging Face
BERT model (`swap_bert_attention`) or of our own encoder blocks (`swap_self_attention`).

For an attention sublayer with input x (batch, tokens, width) the values V = W_V x are computed
once, and the injected state u is iterated (paper notes, sections 2.2 and 4.2):

    A(u)    = softmax((W_Q u)(W_K u)^T / sqrt(d_h) + M)                         per head
    f(u)    = x + W_O A(u) V
    u_0     = x,   u_{k+1} = Anderson(u_k, ..., u_{k-m+1})  or  (1 - a) u_k + a f(u_k)
    r_k     = ||f(u_k) - u_k||_F / ||u_k||_F                                      per example, valid tokens

The solver is Anderson acceleration over the last m = 5 iterates (`solver="anderson"`, the default,
pre-registered in issue 24) or the damped iteration with a = damping (`solver="damped"`). Each
example stops at the first k with r_k < tol, or at `max_iterations`, and is then dropped from
the batch, so the compute spent is truly per input. (That is the CPU's solve. On an accelerator, where dropping
examples makes the host wait for the device every iteration, a finished example is frozen in place instead and the
batch runs on until a periodic check finds every example done, `repro.device_sync`: the same outputs up to
rounding, at the compute of the batch's slowest example.) The sublayer returns the delta
g(u*) = W_O A(u*) V where vanilla attention returns g(x) = W_O A(x) V: one undamped step (or
`max_iterations=1`) is vanilla attention exactly, so pretrained checkpoints load unchanged. The
iteration runs on d = u - x, so the delta is computed without the cancellation of (x + g) - x.
(W_Q, W_K, W_V, W_O are the layer's affine maps, biases included.)

Gradients, with gr = dL/d(delta) and J = dg/du at the reached point u*:

- "phantom":  backpropagate through one evaluation g(u*) with u* held constant (lambda = gr);
- "neumann":  lambda = sum_{i=0..k} (J^T)^i gr, the truncated Neumann series of (I - J^T)^-1 gr;
- "implicit": lambda = (I - J^T)^-1 gr, solved to `backward_tol` by `repro.fixed_point.iterate`
              (damped with `damping`) or `anderson` -- the exact implicit-function-theorem gradient; a
              solve that misses `backward_tol` raises `AdjointDivergence` (or, with
              `adjoint_failure="record"`, is counted and its result used);
- "unrolled": backpropagate through every iteration (memory grows with the iterations; the reference).

In the first three the solve runs without a graph and, when gradients are enabled, g(u*) is
evaluated once more with one; lambda is backpropagated through that evaluation to the weights and
to x (through V and through u = x + d), so memory does not grow with the iterations.

Every forward leaves `aux` (an `AttentionAux`: iterations, residual trace, final residual and
convergence per example; the adjoint solve's steps and residual once backward has run) on the
module; `fixed_point_aux(model)` stacks them per layer. Every backward adds its per-example adjoint
outcomes (converged, stalled, diverged) to the layer's `AdjointCounts`; `adjoint_counts(model)`
lists them per layer, since the last swap.
"""

import math
import warnings
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from repro.config import StrictConfig, choice
from repro.device_sync import evaluations_needed, sync_free
from repro.fixed_point import FixedPointResult, anderson, anderson_coefficients, flat_norm, iterate
from repro.nn import SelfAttention

GRADIENTS = ("phantom", "neumann", "implicit", "unrolled")
SOLVERS = ("anderson", "damped")
BACKWARD_SOLVERS = ("iterate", "anderson")
ADJOINT_FAILURES = ("raise", "record")


class AdjointDivergence(RuntimeError):
    """An implicit-gradient adjoint solve that missed its tolerance: its result would be a wrong gradient."""


@dataclass
class FixedPointAttentionConfig(StrictConfig):
    # DEVIATION: [self-solver-settings] the paper's solver is not known, and the authors' run settings (damping 0.5,
    # cap 8) cannot converge on pretrained weights (issue 24): Anderson m = 5, cap 32, pre-registered.
    solver: str = "anderson"
    """"anderson" (Anderson acceleration over `anderson_memory` iterates) or "damped" (u <- (1 - a) u + a f(u))."""
    damping: float = 0.5
    """a of the damped solver and of the damped adjoint iteration; the authors' runs use 0.5 (paper notes, 2.2)."""
    # DEVIATION: [self-residual-undamped-step] r is measured on the undamped step f(u) - u; the authors measure
    # the damped step a (f(u) - u), so their tol 1e-3 at a = 0.5 is our 2e-3.
    tol: float = 1e-3
    """Stop an example once ||f(u) - u|| / ||u|| < tol; 0 runs every iteration."""
    max_iterations: int = 32
    """Evaluations of f per layer and example; 1 is vanilla attention (the authors' run script: 8)."""
    # DEVIATION: [self-neumann-gradient] the paper states implicit differentiation; the default is the
    # 4-term Neumann refinement the authors' runs used, an approximation of it ("implicit" is exact).
    gradient: str = "neumann"
    neumann_steps: int = 4
    """Terms of the Neumann series after the first (the authors' N = 4)."""
    backward_solver: str = "iterate"
    """Solver of the adjoint equation in "implicit" mode."""
    backward_tol: float = 1e-6
    """Relative residual at which the adjoint solve ("neumann" and "implicit") stops early."""
    backward_max_iterations: int = 40
    adjoint_failure: str = "raise"
    """An "implicit" adjoint solve that misses `backward_tol`: "raise" `AdjointDivergence`, or "record" it in the
    layer's `AdjointCounts` and use its result."""
    anderson_memory: int = 5
    """Iterates Anderson mixes, forward (solver "anderson") and adjoint (backward_solver "anderson")."""

    RANGES = {"damping": "(0, 1]", "tol": "[0, inf)", "max_iterations": "[1, inf)", "neumann_steps": "[1, inf)",
              "backward_tol": "[0, inf)", "backward_max_iterations": "[2, inf)", "anderson_memory": "[2, inf)"}

    def __post_init__(self):
        choice("solver", self.solver, SOLVERS)
        choice("gradient", self.gradient, GRADIENTS)
        choice("backward_solver", self.backward_solver, BACKWARD_SOLVERS)
        choice("adjoint_failure", self.adjoint_failure, ADJOINT_FAILURES)


@dataclass
class AttentionAux:
    """What one FPSA layer spent on its last forward (and backward), per example."""
    iterations: torch.Tensor
    """(batch,): evaluations of f, the first (vanilla) one included, so refinement steps are one
    fewer; `max_iterations` where the example did not converge."""
    residuals: torch.Tensor
    """(evaluations, batch): r_k at every evaluation, frozen once the example stopped."""
    residual: torch.Tensor
    """(batch,): r at the evaluation whose output was returned."""
    converged: torch.Tensor
    """(batch,) bool: residual < tol."""
    backward_steps: torch.Tensor | None = None
    """(batch,): adjoint iterations of the last backward ("neumann", "implicit")."""
    backward_residual: torch.Tensor | None = None
    backward_converged: torch.Tensor | None = None


ADJOINT_OUTCOMES = ("converged", "stalled", "diverged")


class AdjointCounts:
    """Per-example adjoint solves of one FPSA layer by outcome: under `backward_tol` (converged), above it with a
    residual lower than the first (stalled), or at or above the first, or not finite (diverged). "neumann"'s
    truncated series is counted too: its early stop rarely triggers, so "stalled" is its usual outcome.

    The counts are summed where the solves ran and read when asked for (`as_dict`), so a backward never waits for
    the device to count."""

    def __init__(self):
        self._counts: torch.Tensor | None = None  # (converged, stalled, diverged), summed over the backwards

    def add(self, result: FixedPointResult) -> torch.Tensor:
        """Count the solve's examples; returns the (batch,) bool of those that diverged."""
        last, first = result.residuals[-1], result.residuals[0]
        diverged = ~result.converged & ~(last < first)
        stalled = ~result.converged & ~diverged
        counts = torch.stack([result.converged.sum(), stalled.sum(), diverged.sum()])
        self._counts = counts if self._counts is None else self._counts + counts
        return diverged

    def as_dict(self) -> dict[str, int]:
        counts = [0] * len(ADJOINT_OUTCOMES) if self._counts is None else self._counts.tolist()
        return dict(zip(ADJOINT_OUTCOMES, counts))


QueriesKeys = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
"""u (batch, tokens, width) -> queries, keys (batch, heads, tokens, head width)."""
Project = Callable[[torch.Tensor], torch.Tensor]
"""Per-head context (batch, heads, tokens, head width) -> W_O applied to the merged heads."""


def additive_mask(mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """A boolean mask (True = may attend) or an additive one, as an additive float mask.

    The finite minimum rather than -inf keeps a fully masked row finite, as Hugging Face does.
    """
    if mask is None or mask.dtype != torch.bool:
        return None if mask is None else mask.to(dtype)
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, torch.finfo(dtype).min)


def _take(t: torch.Tensor | None, index: torch.Tensor | None) -> torch.Tensor | None:
    """The examples `index` of t, where t has a batch axis (a leading 1 broadcasts)."""
    return t if t is None or index is None or t.shape[0] == 1 else t[index]


def _attend(q, k, v, bias, keep):
    # DEVIATION: [self-no-temperature] the logits scale is 1 / sqrt(d_h), as in the checkpoint; the authors' code
    # divides by a learnable per-head temperature as well (H parameters per layer).
    if keep is None:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
    # The fused kernel samples its own dropout mask; the mask fixed for the whole loop needs explicit weights.
    logits = q @ k.transpose(-2, -1) * q.shape[-1] ** -0.5
    weights = torch.softmax(logits if bias is None else logits + bias, dim=-1)
    return (weights * keep) @ v


def _warn_if_capped(r1: torch.Tensor, config: FixedPointAttentionConfig) -> None:
    """A damped step shrinks the residual at best by (1 - a) (where the Jacobian vanishes): warn when the cap cannot
    reach the tolerance from the first residual r1 even so (issue 24: damping 0.5 with cap 8 on pretrained MiniLM).
    It reads r1 from the device: once per solve of the damped solver, never per iteration."""
    cap, a = config.max_iterations, config.damping
    if config.solver != "damped" or config.tol == 0 or cap == 1 or a == 1:
        return
    best = r1.max().item() * (1 - a) ** (cap - 1)
    if best > config.tol:
        needed = 1 + math.ceil(math.log(r1.max().item() / config.tol) / -math.log(1 - a))
        warnings.warn(f"damped FPSA cannot converge by construction: first residual {r1.max().item():.3g}, at best "
                      f"{best:.3g} after {cap} evaluations at damping {a} (tol {config.tol}); a cap of at least "
                      f"{needed} or solver='anderson' can", RuntimeWarning, stacklevel=4)


class _Compacting:
    """The examples still open as indices into the batch: a finished example leaves every tensor, so an iteration
    computes the open examples alone. Its length and the all-done test read the device every iteration: the CPU's
    form (`repro.device_sync`)."""

    def __init__(self, batch: int, device: torch.device):
        self.batch, self.index = batch, torch.arange(batch, device=device)

    def rows(self, t: torch.Tensor) -> torch.Tensor:
        """The open examples' rows of a (batch, ...) tensor."""
        return t[self.index]

    def subset(self) -> torch.Tensor | None:
        """The examples g evaluates: None for the whole batch."""
        return None if len(self.index) == self.batch else self.index

    def put(self, target: torch.Tensor, rows: torch.Tensor, only: torch.Tensor | None = None) -> torch.Tensor:
        """`target` with the open examples' rows replaced by `rows` (only those rows where `only`)."""
        if only is not None:
            rows = torch.where(only, rows, target[self.index])
        return target.index_copy(0, self.index, rows)

    def needed(self, done: torch.Tensor, iterations: torch.Tensor, evaluation: int, config) -> int | None:
        """The evaluations run, once the solve is over; None while it goes on."""
        return evaluation if evaluation == config.max_iterations or done.all() else None

    def close(self, done: torch.Tensor, history: list) -> list:
        """Drop the examples `done` from the open set and from Anderson's memory."""
        self.index = self.index[~done]
        return [(xs_i[~done], fs_i[~done]) for xs_i, fs_i in history]


class _Masking:
    """The examples still open as a (batch,) mask: every example is computed every iteration and a finished one's
    outputs are frozen at the evaluation it finished at, so nothing reads the device but the periodic all-done
    check (`repro.device_sync.evaluations_needed`): the accelerators' form. (The state of an example that just
    finished takes one more step, which only its frozen, discarded evaluations see.)"""

    def __init__(self, batch: int, device: torch.device):
        self.open = torch.ones(batch, dtype=torch.bool, device=device)

    def rows(self, t: torch.Tensor) -> torch.Tensor:
        return t

    def subset(self) -> None:
        return None

    def put(self, target: torch.Tensor, rows: torch.Tensor, only: torch.Tensor | None = None) -> torch.Tensor:
        keep = self.open if only is None else self.open & only
        return torch.where(keep.view(-1, *[1] * (rows.dim() - 1)), rows, target)

    def needed(self, done: torch.Tensor, iterations: torch.Tensor, evaluation: int, config) -> int | None:
        return evaluations_needed(iterations, evaluation, config.max_iterations, config.tol)

    def close(self, done: torch.Tensor, history: list) -> list:
        self.open = self.open & ~done
        return history


def _solve(g, x: torch.Tensor, weights: torch.Tensor | None, config: FixedPointAttentionConfig):
    """The iteration of the module docstring on d = u - x, finished examples dropped (`_Compacting`) or, where the
    host must not wait for the device, frozen (`_Masking`): the two agree up to rounding.

    Returns (g(u_k) and d_k at each example's last evaluation, AttentionAux). Written without
    in-place writes to tensors that carry a graph, so it also runs under autograd ("unrolled").
    """
    # DEVIATION: [self-example-stop] one relative residual per example over all its valid tokens, not the
    # authors' per-token freeze with an 80% exit fraction over the batch: an example's compute is then one number.
    batch = x.shape[0]
    # DEVIATION: [self-state-from-input] the state starts at the layer input, u_0 = x (d_0 = 0), one full-width state
    # for all heads; the paper summaries read a per-head state started from the query projection.
    d = torch.zeros_like(x)
    delta, d_evaluated = torch.zeros_like(x), torch.zeros_like(x)
    iterations = torch.full((batch,), config.max_iterations, dtype=torch.long, device=x.device)
    residual = torch.zeros(batch, device=x.device)
    trace = []
    active = (_Masking if sync_free(x.device) else _Compacting)(batch, x.device)
    history: list[tuple[torch.Tensor, torch.Tensor]] = []  # (d_i, g(d_i)) of the active examples, Anderson's memory
    for evaluation in range(1, config.max_iterations + 1):
        d_active = active.rows(d)
        g_active = g(d_active, active.subset())
        w = _take(weights, active.subset())
        with torch.no_grad():
            step, u = g_active - d_active, active.rows(x) + d_active
            if weights is not None:
                step, u = step * w, u * w
            r = (flat_norm(step) / flat_norm(u).clamp_min(torch.finfo(torch.float32).tiny)).float()
        if evaluation == 1:
            _warn_if_capped(r, config)
        residual = active.put(residual, r)
        trace.append(residual)
        delta = active.put(delta, g_active)
        d_evaluated = active.put(d_evaluated, d_active)
        done = r < config.tol
        iterations = active.put(iterations, torch.full_like(r, evaluation, dtype=torch.long), done)
        evaluations = active.needed(done, iterations, evaluation, config)
        if evaluations is not None:
            trace = trace[:evaluations]
            break
        if config.solver == "anderson":
            history = (history + [(d_active.flatten(1), g_active.flatten(1))])[-config.anderson_memory:]
            xs, fs = (torch.stack(h, dim=1) for h in zip(*history))
            residuals = fs - xs if w is None else (fs - xs) * w.expand_as(d_active).flatten(1).unsqueeze(1)
            # "unrolled" backpropagates through the evaluations with the mixing weights held constant: through the
            # least squares as well, the gradient on pretrained MiniLM was 200-1300x the converged one's norm.
            following = (anderson_coefficients(residuals.detach()) @ fs)[:, 0].view_as(d_active)
        else:
            following = d_active + config.damping * (g_active - d_active)
        d = active.put(d, following)
        history = active.close(done, history)
    aux = AttentionAux(iterations, torch.stack(trace), residual, residual < config.tol)
    return delta, d_evaluated, aux


def _adjoint_hook(g: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor], d_star: torch.Tensor,
                  config: FixedPointAttentionConfig, aux: AttentionAux, counts: AdjointCounts | None, layer: str):
    """Gradient hook on out = g(d*) that replaces gr by lambda solving lambda = J^T lambda + gr.

    J^T is applied through a fresh evaluation of g at d*, never through `out` itself: a hook that
    holds the tensor it is registered on is a reference cycle through the autograd graph that
    Python's garbage collector cannot see, and it kept every training step's graph alive."""

    def hook(gr: torch.Tensor):
        if gr is None:
            return None
        with torch.enable_grad():
            d = d_star.detach().requires_grad_()
            out = g(d, None)

        def adjoint_map(lam):
            return torch.autograd.grad(out, d, lam, retain_graph=True)[0] + gr
        if config.gradient == "neumann":
            # DEVIATION: [self-neumann-jacobian] the series of the undamped map's J, whose spectral radius exceeds 1 in
            # pretrained MiniLM's layers 1-4; the authors' series is of the damped map's (1 - a) I + a J.
            # lambda_0 = gr and k plain steps give exactly the series sum_{i<=k} (J^T)^i gr.
            result = iterate(adjoint_map, gr, config.neumann_steps, config.backward_tol)
        elif config.backward_solver == "anderson":
            result = anderson(adjoint_map, gr, config.backward_max_iterations, config.backward_tol,
                              memory=config.anderson_memory)
        else:
            # The damped adjoint iteration has the spectrum of the damped forward one: it converges where that does.
            result = iterate(adjoint_map, gr, config.backward_max_iterations, config.backward_tol,
                             damping=config.damping)
        aux.backward_steps, aux.backward_converged = result.steps, result.converged
        aux.backward_residual = result.residuals[-1]
        diverged = (counts or AdjointCounts()).add(result)
        # The one read of the device in a backward, and only where a missed tolerance must stop the run.
        if config.gradient == "implicit" and config.adjoint_failure == "raise" and not result.converged.all():
            missed = ~result.converged
            raise AdjointDivergence(
                f"{layer}: the implicit adjoint solve ({config.backward_solver}) missed backward_tol "
                f"{config.backward_tol:g} for {int(missed.sum())} of {len(missed)} examples ({int(diverged.sum())} "
                f"diverged): residual up to {result.residuals[-1][missed].max().item():.3g} after "
                f"{int(result.steps.max())} steps. Use gradient='neumann', another backward_solver or more "
                "backward_max_iterations, or adjoint_failure='record' to count it and go on")
        return result.state

    return hook


def fixed_point_attention(x: torch.Tensor, queries_keys: QueriesKeys, values: torch.Tensor, project: Project,
                          config: FixedPointAttentionConfig, bias: torch.Tensor | None = None,
                          token_mask: torch.Tensor | None = None, dropout: float = 0.0,
                          counts: AdjointCounts | None = None, layer: str = "FPSA") -> tuple[torch.Tensor, AttentionAux]:
    """The FPSA delta g(u*) = W_O A(u*) V of the module docstring, and what it spent.

    `values` (batch, heads, tokens, head width) = W_V x, computed once by the caller; `bias` an
    additive mask broadcastable to (batch, heads, tokens, tokens); `token_mask` (batch, tokens)
    True for the tokens counted in the residual norms (padding excluded); `dropout` the
    attention-dropout rate, 0 outside training; `counts` collects the adjoint outcomes and `layer`
    names the layer in an `AdjointDivergence`.
    """
    # One Bernoulli mask per forward, reused at every iteration and in the backward, so f is one
    # deterministic map and has a fixed point at all (paper notes, section 4.7).
    keep = None
    if dropout > 0:
        shape = (*values.shape[:3], values.shape[2])
        keep = (torch.rand(shape, device=x.device) >= dropout).to(x.dtype) / (1 - dropout)

    # DEVIATION: [self-injected-map] the paper body's equation is unreadable: this is the injected map of the
    # authors' later FPSA-R code ("Eq. 5"), Q and K from u, V fixed; their BERT code iterates without x.
    def g(d: torch.Tensor, index: torch.Tensor | None) -> torch.Tensor:
        """g(u) = W_O A(u) V at u = x + d, for the examples `index` (all where None); f(u) = x + g(u)."""
        q, k = queries_keys(_take(x, index) + d)
        return project(_attend(q, k, _take(values, index), _take(bias, index), _take(keep, index)))

    weights = None if token_mask is None else token_mask.unsqueeze(-1).to(x.dtype)
    if config.gradient == "unrolled" and torch.is_grad_enabled():
        delta, _, aux = _solve(g, x, weights, config)
        return delta, aux
    with torch.no_grad():
        delta, d_star, aux = _solve(g, x, weights, config)
    if not torch.is_grad_enabled():
        return delta, aux
    if config.gradient == "phantom":
        return g(d_star, None), aux
    out = g(d_star, None)
    out.register_hook(_adjoint_hook(g, d_star, config, aux, counts, layer))
    return out, aux


def _split_heads(t: torch.Tensor, heads: int) -> torch.Tensor:
    return t.view(*t.shape[:-1], heads, t.shape[-1] // heads).transpose(1, 2)


def _merge_heads(t: torch.Tensor) -> torch.Tensor:
    return t.transpose(1, 2).flatten(2)


class FixedPointSelfAttention(nn.Module):
    """FPSA with the weights of a `repro.nn.SelfAttention`: same call, same parameters and
    state-dict keys (`qkv`, `out`, `position_bias`), so a vanilla checkpoint loads unchanged.

    Returns the delta W_O A(u*) V that the pre-LN `EncoderBlock` adds to its residual stream:
    x here is LN(x_in), as in the authors' pre-LN code (paper notes, section 2.2).
    """

    def __init__(self, attention: SelfAttention, config: FixedPointAttentionConfig):
        super().__init__()
        self.heads, self.dropout = attention.heads, attention.dropout
        self.qkv, self.out, self.position_bias = attention.qkv, attention.out, attention.position_bias
        self.name = "FPSA"
        self.configure(config)
        self.aux: AttentionAux | None = None
        self.train(attention.training)

    def configure(self, config: FixedPointAttentionConfig) -> None:
        """Take `config` and start new adjoint counts (they describe one configuration)."""
        self.config, self.adjoint = config, AdjointCounts()

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        width = x.shape[-1]

        def queries_keys(u):
            # Q and K are recomputed from u every iteration, V once from x: rows of the fused projection.
            qk = F.linear(u, self.qkv.weight[:2 * width], self.qkv.bias[:2 * width])
            return tuple(_split_heads(t, self.heads) for t in qk.chunk(2, dim=-1))

        values = _split_heads(F.linear(x, self.qkv.weight[2 * width:], self.qkv.bias[2 * width:]), self.heads)
        bias = None if key_mask is None else additive_mask(key_mask[:, None, None, :], x.dtype)
        if self.position_bias is not None:
            position = self.position_bias(x.shape[1])[None].to(x.dtype)
            bias = position if bias is None else position + bias
        delta, self.aux = fixed_point_attention(x, queries_keys, values, lambda c: self.out(_merge_heads(c)),
                                                self.config, bias, key_mask,
                                                self.dropout if self.training else 0.0, self.adjoint, self.name)
        return delta


class FixedPointBertAttention(nn.Module):
    """FPSA in place of a Hugging Face `BertAttention` (self-attention + `BertSelfOutput`), reusing
    its submodules `self` (query, key, value) and `output` (dense = W_O, dropout, LayerNorm): no
    new parameters, the same state-dict keys.

    Post-LN as in BERT: out = LN(x + Dropout(W_O A(u*) V)), where vanilla has A(x). Q and K are
    computed directly on u (paper notes, section 4.2: this matches vanilla at k = 0).
    """

    def __init__(self, attention: nn.Module, config: FixedPointAttentionConfig):
        super().__init__()
        if attention.is_cross_attention or attention.self.is_decoder:
            raise ValueError("FPSA replaces encoder self-attention, not a decoder's or cross-attention")
        self.self, self.output = attention.self, attention.output
        self.is_cross_attention = False
        self.name = "FPSA"
        self.configure(config)
        self.aux: AttentionAux | None = None
        self.train(attention.training)

    configure = FixedPointSelfAttention.configure

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None,
                encoder_hidden_states=None, encoder_attention_mask=None, past_key_values=None,
                **kwargs) -> tuple[torch.Tensor, None]:
        if encoder_hidden_states is not None or past_key_values is not None:
            raise ValueError("FPSA supports encoder self-attention only: no encoder states, no key-value cache")
        # DEVIATION: [self-post-ln-loop] in a post-LN checkpoint the loop runs on the un-normalised layer
        # input, before the sublayer's LayerNorm; the authors' code is pre-LN, the paper's placement unknown.
        x, heads = hidden_states, self.self.num_attention_heads
        queries_keys = lambda u: (_split_heads(self.self.query(u), heads), _split_heads(self.self.key(u), heads))
        values = _split_heads(self.self.value(x), heads)
        bias = additive_mask(attention_mask, x.dtype)
        # DEVIATION: [self-no-rope-in-loop] positions enter as the checkpoint's absolute embeddings, before every
        # layer, for vanilla and FPSA alike; the authors' runs give FPSA alone RoPE, applied to Q and K in the loop.
        # The keys some query may attend to are the real tokens; padding stays out of the residual norms.
        token_mask = None if bias is None else \
            (bias > torch.finfo(x.dtype).min / 2).expand(-1, -1, x.shape[1], -1).any(dim=2).any(dim=1)
        delta, self.aux = fixed_point_attention(x, queries_keys, values,
                                                lambda c: self.output.dense(_merge_heads(c)), self.config,
                                                bias, token_mask, self.self.dropout.p if self.training else 0.0,
                                                self.adjoint, self.name)
        return self.output.LayerNorm(self.output.dropout(delta) + x), None


def _swap(model: nn.Module, replaces: Callable[[nn.Module], bool], wrapper: type, config) -> nn.Module:
    if isinstance(model, wrapper):
        model.configure(config)
        return model
    if replaces(model):
        return wrapper(model, config)
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, wrapper):
                child.configure(config)
            elif replaces(child):
                setattr(parent, name, wrapper(child, config))
    # Names for error messages and count tables: the module path, e.g. "encoder.layer.2.attention".
    for name, module in model.named_modules():
        if isinstance(module, wrapper):
            module.name = name
    return model


def swap_bert_attention(model: nn.Module, config: FixedPointAttentionConfig) -> nn.Module:
    """Replace every self-attention `BertAttention` of a Hugging Face model by FPSA, in place.

    Returns the model (the new module where `model` is itself a `BertAttention`). Already-swapped
    layers take the new `config` (and start new adjoint counts), so the same call changes the
    tolerance or cap for evaluation.
    """
    from transformers.models.bert.modeling_bert import BertAttention

    return _swap(model, lambda m: isinstance(m, BertAttention) and not m.is_cross_attention,
                 FixedPointBertAttention, config)


def swap_self_attention(model: nn.Module, config: FixedPointAttentionConfig) -> nn.Module:
    """Replace every `repro.nn.SelfAttention` of one of our models by FPSA, in place (see above)."""
    return _swap(model, lambda m: type(m) is SelfAttention, FixedPointSelfAttention, config)


def fixed_point_layers(model: nn.Module) -> list[nn.Module]:
    """The FPSA modules of a model, in forward (module) order."""
    return [m for m in model.modules() if isinstance(m, (FixedPointSelfAttention, FixedPointBertAttention))]


def fixed_point_aux(model: nn.Module) -> dict[str, torch.Tensor]:
    """(layers, batch) "iterations", "residuals" (final) and "converged" of the last forward, and
    "backward_steps" once a backward has run through every layer."""
    records = [layer.aux for layer in fixed_point_layers(model)]
    if not records or any(r is None for r in records):
        raise ValueError("no forward through FPSA layers to report: swap attention and run the model first")
    aux = {"iterations": torch.stack([r.iterations for r in records]),
           "residuals": torch.stack([r.residual for r in records]),
           "converged": torch.stack([r.converged for r in records])}
    if all(r.backward_steps is not None for r in records):
        aux["backward_steps"] = torch.stack([r.backward_steps for r in records])
    return aux


def adjoint_counts(model: nn.Module) -> list[dict]:
    """One row per FPSA layer: its name, gradient mode and the per-example adjoint outcomes (`AdjointCounts`) of every
    backward since the layer last took a config."""
    return [{"layer": layer.name, "gradient": layer.config.gradient, **layer.adjoint.as_dict()}
            for layer in fixed_point_layers(model)]
