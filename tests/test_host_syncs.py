"""The hot loops' sync-free form (`repro.device_sync`), run on the CPU: it gives the results of the CPU's
data-dependent form, and it reads the device a number of times that does not grow with the iterations it runs. So
does the training loop: it reads its losses once per interval, and its history is the one of a read at every step."""

import itertools
import math

import pytest
import torch
from torch import nn

import repro.train
from repro.device_sync import EXIT_CHECK_EVERY, HostReadCounter, evaluations_needed, forced_sync_free, sync_free
from repro.fixed_point import anderson, iterate
from repro.losses import classification_loss, progressive_loss
from repro.models.adatape import AdaptiveTapeReader, AdaTapeParity, AdaTapeParityConfig
from repro.models.looped import LoopedConfig, LoopedTransformer
from repro.models.self_transformer import FixedPointAttentionConfig, FixedPointSelfAttention, swap_self_attention
from repro.models.transformer import TransformerClassifier, TransformerConfig
from repro.models.universal import UniversalConfig, UniversalTransformer
from repro.nn import SelfAttention
from repro.profiles import ACCELERATOR_PROFILES, tf32_for
from repro.seeding import derive, rng, torch_seed
from repro.train import NonFiniteLossError, TrainConfig, adamw, learning_rate_factor, train

pytestmark = pytest.mark.usefixtures("one_thread")

CLOSE = dict(rtol=1e-5, atol=1e-6)
"""The two forms compute the same values over batches of different sizes: equal up to float32 rounding."""


def both_forms(run):
    """run() in the CPU's form and in the sync-free form."""
    default = run()
    with forced_sync_free():
        return default, run()


def assert_same(default, sync_free_result):
    assert default.keys() == sync_free_result.keys()
    for name, value in default.items():
        if value.dtype in (torch.bool, torch.long):
            assert torch.equal(value, sync_free_result[name]), name
        else:
            torch.testing.assert_close(sync_free_result[name], value, **CLOSE, msg=name)


def test_the_cpu_runs_the_data_dependent_form_unless_forced():
    cpu = torch.device("cpu")
    assert not sync_free(cpu) and sync_free(torch.device("cuda")) and sync_free(torch.device("meta"))
    with forced_sync_free():
        assert sync_free(cpu)
    assert not sync_free(cpu)


def test_a_sync_free_solve_reads_only_at_its_checks_and_stops_where_the_data_dependent_one_does():
    steps = torch.tensor([2, 32, 5])  # one example still open at a cap of 32
    with HostReadCounter() as reads:
        assert [evaluations_needed(steps, e, 32, 1e-3) for e in range(1, EXIT_CHECK_EVERY)] == [None] * 3
    assert reads.reads == 0
    assert evaluations_needed(steps, EXIT_CHECK_EVERY, 32, 1e-3) is None
    assert evaluations_needed(torch.tensor([2, 7, 5]), 8, 32, 1e-3) == 7
    assert evaluations_needed(torch.tensor([2, 31, 5]), 31, 32, 1e-3) is None  # no check due at 31
    assert evaluations_needed(torch.tensor([2, 31, 5]), 32, 32, 1e-3) == 31  # the cap always tells
    with HostReadCounter() as reads:  # tol 0: nothing can converge, nothing is read
        assert [evaluations_needed(steps, e, 32, 0.0) for e in range(1, 33)] == [None] * 31 + [32]
    assert reads.reads == 0


def fpsa(solver: str, gradient: str, **config) -> FixedPointSelfAttention:
    with torch_seed(0):
        layer = SelfAttention(8, 2, 0.0, 3)
    with torch.no_grad():
        for parameter in layer.parameters():
            parameter.mul_(0.8)  # a contraction, so the examples converge at different evaluations
    return FixedPointSelfAttention(layer, FixedPointAttentionConfig(
        solver=solver, gradient=gradient, adjoint_failure="record", **({"tol": 1e-4, "max_iterations": 30} | config)))


def fpsa_step(layer: FixedPointSelfAttention) -> dict[str, torch.Tensor]:
    """Forward and backward of one FPSA layer on a padded batch whose examples converge at different evaluations."""
    x = torch.randn(5, 6, 8, generator=rng("host-syncs-x"))
    x[0] *= 0.1
    x[3] *= 2
    mask = torch.ones(5, 6, dtype=torch.bool)
    mask[-1, 3:] = False
    x.requires_grad_()
    layer.zero_grad()
    out = layer(x, mask)
    (out * torch.randn(out.shape, generator=rng("host-syncs-probe"))).sum().backward()
    aux = layer.aux
    return {"output": out.detach(), "iterations": aux.iterations, "converged": aux.converged,
            "residuals": aux.residuals, "residual": aux.residual, "input gradient": x.grad,
            **{f"gradient {name}": p.grad for name, p in layer.named_parameters()},
            **({} if aux.backward_steps is None else {"backward steps": aux.backward_steps})}


@pytest.mark.parametrize("solver", ["anderson", "damped"])
@pytest.mark.parametrize("gradient", ["neumann", "implicit", "unrolled", "phantom"])
def test_the_sync_free_fpsa_solve_gives_the_active_set_results(solver, gradient):
    default, sync_free_result = both_forms(lambda: fpsa_step(fpsa(solver, gradient)))
    assert len(set(default["iterations"].tolist())) > 1  # the active set shrank along the way
    assert_same(default, sync_free_result)


@pytest.mark.parametrize("solve", [iterate, anderson])
def test_the_sync_free_fixed_point_solvers_give_the_same_results_and_read_per_check(solve):
    scales = torch.tensor([[0.1], [0.5], [0.9]], dtype=torch.float64)
    f = lambda z: scales * torch.tanh(z) + 1.0
    z0 = torch.zeros(3, 1, dtype=torch.float64)
    with HostReadCounter() as default_reads:
        default = solve(f, z0, 100, tol=1e-10)
    with forced_sync_free(), HostReadCounter() as reads:
        result = solve(f, z0, 100, tol=1e-10)
    assert len(set(default.steps.tolist())) > 1
    assert_same(vars(default), vars(result))
    needed = len(default.residuals)
    assert default_reads.reads >= needed and reads.reads == math.ceil(needed / EXIT_CHECK_EVERY)


def test_act_and_the_tape_reader_give_the_same_results_sync_free():
    def ponder():
        with torch_seed(0):
            model = UniversalTransformer(UniversalConfig(vocab=3, max_len=8, classes=2, width=16, heads=2,
                                                         mlp_hidden=32, max_steps=8))
        nn.init.constant_(model.halting.bias, -1.0)  # a few steps, fewer than the cap, different per position
        logits, aux = model(torch.randint(0, 3, (4, 8), generator=rng("host-syncs-ut")))
        logits.sum().backward()
        return {"logits": logits.detach(), "ponder steps": aux["ponder_steps"], "mass": aux["halting_mass"],
                **{name: p.grad for name, p in model.named_parameters()}}

    default, sync_free_result = both_forms(ponder)
    assert default["ponder steps"].max() < 8
    assert_same(default, sync_free_result)

    def read():
        with torch_seed(0):
            reader = AdaptiveTapeReader(16, key_width=4, max_tape=8, budget=2.0)
        query = torch.randn(6, 16, generator=rng("host-syncs-query")).requires_grad_()
        bank = torch.randn(6, 12, 16, generator=rng("host-syncs-bank")).requires_grad_()
        reading = reader(query, bank)
        (reading.tokens.sum() + reading.impurity.sum()).backward()
        return vars(reading) | {"query gradient": query.grad, "bank gradient": bank.grad}

    default, sync_free_result = both_forms(read)
    assert len(set(default["length"].tolist())) > 1 and default["length"].max() < 8  # the whole batch halted early
    assert_same(default, sync_free_result)


def training_step_reads(model: nn.Module, loss_fn, batch) -> int:
    """Host reads of one training step (loss, backward, clipping, fused AdamW) in the sync-free form."""
    optimizer = adamw(model, TrainConfig(steps=1), torch.device("cpu"))
    with forced_sync_free(), torch_seed(1), HostReadCounter() as counter:
        loss = loss_fn(model, batch)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    return counter.reads


def parity_batch():
    tokens = torch.randint(0, 3, (8, 8), generator=rng("host-syncs-parity"))
    return tokens, tokens.eq(1).sum(dim=1).remainder(2)


def test_a_training_step_of_an_fpsa_model_reads_the_device_a_fixed_number_of_times():
    def reads(max_iterations, tol):
        with torch_seed(0):
            model = TransformerClassifier(TransformerConfig(vocab=3, max_len=8, classes=2, width=16, heads=2,
                                                            layers=2, mlp_hidden=32))
        swap_self_attention(model, FixedPointAttentionConfig(max_iterations=max_iterations, tol=tol))
        return training_step_reads(model, classification_loss, parity_batch())

    # Run to the cap, nothing is read in the forward; the 4-term Neumann adjoint of each layer is read once, at its end.
    assert reads(4, 0.0) == reads(32, 0.0) == 2
    # Stopping on the tolerance: one read per layer every EXIT_CHECK_EVERY evaluations.
    assert reads(32, 1e-3) <= 2 * (math.ceil(32 / EXIT_CHECK_EVERY) + 1)


def test_a_training_step_of_act_adatape_and_a_looped_model_reads_independently_of_their_steps():
    def ut(max_steps):
        with torch_seed(0):
            model = UniversalTransformer(UniversalConfig(vocab=3, max_len=8, classes=2, width=16, heads=2,
                                                         mlp_hidden=32, max_steps=max_steps))
        nn.init.constant_(model.halting.bias, -4.0)  # every position ponders to the cap
        return training_step_reads(model, classification_loss, parity_batch())

    # The all-halted check every EXIT_CHECK_EVERY steps, before the last.
    assert [ut(steps) for steps in (4, 8, 16)] == [(steps - 1) // EXIT_CHECK_EVERY for steps in (4, 8, 16)]

    def adatape(max_tape):
        with torch_seed(0):
            model = AdaTapeParity(AdaTapeParityConfig(length=8, encoder=dict(
                width=16, heads=2, layers=2, mlp_hidden=32, max_tape=max_tape, budget=max_tape / 4)))
        return training_step_reads(model, classification_loss, parity_batch())

    # F.one_hot checks its input's range on the CPU alone: 2 reads there, none on CUDA.
    assert adatape(4) == adatape(16) == 2

    def looped(iterations):
        with torch_seed(0):
            model = LoopedTransformer(LoopedConfig(vocab=3, outputs=2, iterations=iterations, width=16, heads=2,
                                                   mlp_hidden=32, max_offset=4))
        tokens = torch.randint(0, 2, (4, 8), generator=rng("host-syncs-prefix"))
        return training_step_reads(model, progressive_loss(iterations, 0.5), (tokens, tokens.cumsum(1) % 2))

    # The progressive loss's two draws of iteration counts, from the CPU's generator.
    assert looped(2) == looped(12) == 2


class Batches:
    """Fixed parity batches whose building reads nothing, and a factor per step that turns the loss NaN from
    `nan_from` on."""

    def __init__(self, steps: int, nan_from: int | None = None):
        self.batches = [parity_batch() for _ in range(steps)]
        self.nan_from = nan_from

    def batch_at(self, step: int):
        poison = float("nan") if self.nan_from is not None and step >= self.nan_from else 1.0
        return (*self.batches[step], torch.tensor(poison))


def poisoned_loss(model, batch):
    tokens, labels, poison = batch
    return classification_loss(model, (tokens, labels)) * poison


def small_model():
    with torch_seed(0):
        return TransformerClassifier(TransformerConfig(vocab=3, max_len=8, classes=2, width=16, heads=2, layers=1,
                                                       mlp_hidden=32, dropout=0.1))


def test_training_reads_the_losses_once_per_interval(monkeypatch):
    def reads(config):
        with HostReadCounter() as counter:
            train(small_model(), poisoned_loss, Batches(config.steps), config)
        return counter.reads

    assert reads(TrainConfig(steps=8, eval_every=4, progress=False)) == 2
    assert reads(TrainConfig(steps=16, eval_every=4, progress=False)) == 4
    monkeypatch.setattr(repro.train, "LOSS_READ_EVERY", 3)
    assert reads(TrainConfig(steps=7, progress=False)) == 3  # at steps 3, 6 and the end


def test_the_history_holds_the_losses_a_read_at_every_step_gave():
    config = TrainConfig(steps=9, lr=3e-3, warmup_steps=2, eval_every=4, progress=False, seed=2)
    data = Batches(config.steps)
    history = train(small_model(), poisoned_loss, data, config).history

    model = small_model()  # the loop as it was: `.item()` at every step
    optimizer = adamw(model, config, torch.device("cpu"))
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: learning_rate_factor(step, config))
    expected, window = [], []
    with torch_seed(derive("train", config.seed)):
        for step in range(config.steps):
            loss = poisoned_loss(model, data.batch_at(step))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), config.clip_norm)
            optimizer.step()
            schedule.step()
            window.append(loss.item())
            if step + 1 in (4, 8, 9):
                expected.append(sum(window) / len(window))
                window = []
    assert [row["train_loss"] for row in history] == expected
    assert [row["step"] for row in history] == [4, 8, 9]


def test_a_loss_that_stops_being_finite_is_named_at_its_first_step_even_read_late():
    config = TrainConfig(steps=12, eval_every=3, progress=False)
    with pytest.raises(NonFiniteLossError, match=r"loss became nan at step 4 \(last finite loss [0-9.]+, learning"):
        train(small_model(), poisoned_loss, Batches(12, nan_from=4), config)

    calls = itertools.count()

    def failing(model, batch):  # step 6 fails on the garbage the NaN of step 5 left, before the loss was read
        if next(calls) == 6:
            raise RuntimeError("a step that choked on NaN weights")
        return poisoned_loss(model, batch)

    with pytest.raises(NonFiniteLossError, match="loss became nan at step 5 "):
        train(small_model(), failing, Batches(12, nan_from=5), TrainConfig(steps=12, progress=False))


def test_tf32_is_for_the_accelerator_profiles_alone():
    assert not tf32_for("smoke") and not tf32_for("cpu")
    assert all(tf32_for(profile) for profile in ACCELERATOR_PROFILES)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the prefetch and pinned copies are CUDA's")
def test_cuda_batches_are_prefetched_pinned_and_unchanged():
    data = Batches(5)
    batches = list(repro.train.device_batches(data, 1, 5, torch.device("cuda")))
    assert len(batches) == 4
    for step, batch in zip(range(1, 5), batches):
        for moved, built in zip(batch, data.batch_at(step)):
            assert moved.device.type == "cuda" and torch.equal(moved.cpu(), built)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="synchronisations are CUDA's")
def test_the_loops_on_cuda_never_synchronise():
    device = torch.device("cuda")
    layer = fpsa("anderson", "neumann", tol=0.0).to(device)
    with torch_seed(0):
        ut = UniversalTransformer(UniversalConfig(vocab=3, max_len=8, classes=2, width=16, heads=2, mlp_hidden=32,
                                                  max_steps=4)).to(device)
        reader = AdaptiveTapeReader(16, key_width=4, max_tape=8, budget=2.0).to(device)
    x, tokens = torch.randn(5, 6, 8, device=device), torch.randint(0, 3, (4, 8), device=device)
    query, bank = torch.randn(6, 16, device=device), torch.randn(6, 12, 16, device=device)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        with torch.no_grad():
            layer(x)
            ut(tokens)
            reader(query, bank)
    finally:
        torch.cuda.set_sync_debug_mode("default")
