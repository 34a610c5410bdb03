import math

import pytest
import torch
from torch import nn

from repro.data.parity import ParityStream
from repro.losses import classification_loss
from repro.models.transformer import TransformerClassifier, TransformerConfig
from repro.seeding import torch_seed
from repro.train import NonFiniteLossError, TrainConfig, learning_rate_factor, train

CONFIG = TrainConfig(steps=12, lr=3e-3, warmup_steps=3, eval_every=4, checkpoint_every=4, progress=False, seed=5)


def model():
    with torch_seed(0):
        # Dropout on, so the resumed run must also restore the dropout random state.
        return TransformerClassifier(TransformerConfig(vocab=3, max_len=8, classes=2, width=16, heads=2, layers=1,
                                                       mlp_hidden=32, dropout=0.1))


def evaluate(m):
    inputs, labels = ParityStream("adatape", 8, 64, seed=99).batch_at(0)
    return {"loss": nn.functional.cross_entropy(m(inputs)[0], labels).item()}


class Killed(Exception):
    pass


class DyingStream(ParityStream):
    """A stream whose process is 'killed' when it reaches a given step."""

    def __init__(self, die_at, **kwargs):
        super().__init__(**kwargs)
        self.die_at = die_at

    def batch_at(self, step):
        if step == self.die_at:
            raise Killed
        return super().batch_at(step)


def test_killed_and_resumed_run_ends_with_the_same_metrics(tmp_path):
    data = dict(kind="adatape", length=8, batch_size=16, seed=1)
    straight = model()
    reference = train(straight, classification_loss, ParityStream(**data), CONFIG, evaluate)
    checkpoint = tmp_path / "run.pt"
    with pytest.raises(Killed):
        train(model(), classification_loss, DyingStream(die_at=6, **data), CONFIG, evaluate, checkpoint=checkpoint)
    resumed_model = model()
    resumed = train(resumed_model, classification_loss, ParityStream(**data), CONFIG, evaluate, checkpoint=checkpoint)
    assert resumed.history == reference.history
    for a, b in zip(straight.state_dict().values(), resumed_model.state_dict().values()):
        assert torch.equal(a, b)
    # A finished checkpoint returns at once with the same history; another configuration is refused.
    assert train(model(), classification_loss, ParityStream(**data), CONFIG, evaluate,
                 checkpoint=checkpoint).history == reference.history
    with pytest.raises(ValueError, match="another configuration"):
        train(model(), classification_loss, ParityStream(**data), TrainConfig(steps=13, progress=False),
              checkpoint=checkpoint)


def test_training_stops_with_a_message_when_the_loss_is_not_finite():
    def exploding(m, batch):
        return classification_loss(m, batch) * float("nan")

    with pytest.raises(NonFiniteLossError, match="loss became nan at step 0"):
        train(model(), exploding, ParityStream("adatape", 8, 4, 0), CONFIG)


def test_training_does_not_touch_the_global_random_state():
    state = torch.get_rng_state()
    train(model(), classification_loss, ParityStream("adatape", 8, 4, 0), TrainConfig(steps=2, progress=False))
    assert torch.equal(state, torch.get_rng_state())


def test_schedule_warms_up_linearly_then_decays_by_cosine_to_the_floor():
    config = TrainConfig(steps=100, warmup_steps=10, min_lr_ratio=0.1)
    assert learning_rate_factor(0, config) == pytest.approx(0.1)
    assert learning_rate_factor(9, config) == pytest.approx(1.0)
    assert learning_rate_factor(10, config) == pytest.approx(1.0)
    assert learning_rate_factor(55, config) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert learning_rate_factor(100, config) == pytest.approx(0.1)


def test_misspelled_training_option_names_the_valid_ones():
    with pytest.raises(ValueError, match="valid keys.*warmup_steps"):
        TrainConfig.from_dict({"steps": 10, "warmup": 2})


def test_fused_adamw_follows_the_unfused_training_curve():
    def run(fused):
        m = model()
        optimizer = torch.optim.AdamW(m.parameters(), lr=3e-3, weight_decay=0.01, fused=fused)
        losses = []
        with torch_seed(3):  # the same dropout masks in both runs
            for step in range(20):
                loss = classification_loss(m, ParityStream("adatape", 8, 16, seed=1).batch_at(step))
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                losses.append(loss.item())
        return losses, m

    (unfused, a), (fused, b) = run(False), run(True)
    assert fused == pytest.approx(unfused, rel=1e-4, abs=1e-5)
    # Outputs, not parameters: the key bias gets a gradient of pure rounding noise (softmax ignores it), which
    # Adam scales up to a full step, so the two kernels move it differently without changing the function.
    a.eval(), b.eval()
    inputs, _ = ParityStream("adatape", 8, 64, seed=99).batch_at(0)
    torch.testing.assert_close(a(inputs)[0], b(inputs)[0], rtol=1e-4, atol=1e-5)


def test_the_training_loop_uses_the_fused_optimizer_on_cpu():
    from repro.train import adamw
    assert adamw(model(), CONFIG, torch.device("cpu")).defaults["fused"] is True


def test_steps_to_criterion_is_the_first_evaluation_that_meets_it():
    from repro.train import steps_to_criterion
    history = [{"step": 10, "acc": 0.5}, {"step": 20, "acc": 0.96}, {"step": 30, "acc": 0.9}]
    assert steps_to_criterion(history, "acc", 0.95) == 20
    assert steps_to_criterion(history, "acc", 0.99) is None
    assert steps_to_criterion([], "acc", 0.5) is None
    with pytest.raises(KeyError, match="no metric 'accuracy'.*acc"):
        steps_to_criterion(history, "accuracy", 0.5)
