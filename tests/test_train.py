import math
import os
import random
import re
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from repro.data.parity import ParityStream
from repro.data.prefix_sums import PrefixSumStream
from repro.losses import classification_loss, progressive_loss
from repro.models.looped import LoopedConfig, LoopedTransformer
from repro.models.transformer import TransformerClassifier, TransformerConfig
from repro.seeding import torch_seed
from repro.train import (NonFiniteLossError, StaleCheckpointWarning, TrainConfig, cuda_random_state,
                         fingerprint_differences, learning_rate_factor, restore, run_fingerprint, train)

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


def dying(at_call):
    """`evaluate`, except that its `at_call`-th call 'kills the process' (evaluation is not part of a fingerprint)."""
    calls = iter(range(1, 10 ** 6))

    def evaluate_or_die(m):
        if next(calls) == at_call:
            raise Killed
        return evaluate(m)

    return evaluate_or_die


def test_killed_and_resumed_run_ends_with_the_same_metrics(tmp_path):
    data = dict(kind="adatape", length=8, batch_size=16, seed=1)
    straight = model()
    reference = train(straight, classification_loss, ParityStream(**data), CONFIG, evaluate)
    checkpoint = tmp_path / "run.pt"
    with pytest.raises(Killed):  # at the evaluation of step 8, after the checkpoint of step 4
        train(model(), classification_loss, ParityStream(**data), CONFIG, dying(at_call=2), checkpoint=checkpoint)
    assert torch.load(checkpoint, weights_only=False)["step"] == 4
    resumed_model = model()
    with warnings.catch_warnings():
        warnings.simplefilter("error", StaleCheckpointWarning)
        resumed = train(resumed_model, classification_loss, ParityStream(**data), CONFIG, evaluate,
                        checkpoint=checkpoint)
        # A finished checkpoint returns at once with the same history.
        assert train(model(), classification_loss, ParityStream(**data), CONFIG, evaluate,
                     checkpoint=checkpoint).history == reference.history
    assert resumed.history == reference.history
    for a, b in zip(straight.state_dict().values(), resumed_model.state_dict().values()):
        assert torch.equal(a, b)


def looped_run(iterations=2, alpha=0.5, length=8, batch_size=8, **config):
    """A tiny looped model, its progressive loss and prefix-sum stream, and a 6-step config: the pieces of a run."""
    with torch_seed(0):
        m = LoopedTransformer(LoopedConfig(vocab=3, outputs=2, iterations=iterations, width=16, heads=2,
                                           mlp_hidden=32, max_offset=4))
    settings = dict(steps=6, lr=3e-3, eval_every=3, checkpoint_every=3, progress=False) | config
    return m, progressive_loss(iterations, alpha), PrefixSumStream(length, batch_size, seed=0), TrainConfig(**settings)


@pytest.mark.parametrize("change, field", [
    (dict(batch_size=4), "data.batch_size: 8 -> 4"),
    (dict(length=10), "data.length: 8 -> 10"),
    (dict(iterations=3), "model.config.iterations: 2 -> 3"),
    (dict(alpha=0.25), "loss.alpha: 0.5 -> 0.25"),
    (dict(lr=1e-3), "config.lr: 0.003 -> 0.001"),
    (dict(steps=9), "config.steps: 6 -> 9"),
])
def test_a_checkpoint_of_another_run_is_not_resumed_and_the_warning_says_what_differs(tmp_path, change, field):
    checkpoint = tmp_path / "run.pt"
    first = train(*looped_run(), checkpoint=checkpoint)
    with warnings.catch_warnings():
        warnings.simplefilter("error", StaleCheckpointWarning)
        assert train(*looped_run(), checkpoint=checkpoint).history == first.history  # the same run resumes
    fresh_model, *rest = looped_run(**change)
    fresh = train(fresh_model, *rest)
    changed_model, *rest = looped_run(**change)
    with pytest.warns(StaleCheckpointWarning, match=rf"not resuming .*run\.pt.*{re.escape(field)}.*starting afresh"):
        changed = train(changed_model, *rest, checkpoint=checkpoint)
    assert changed.history == fresh.history
    for a, b in zip(fresh_model.state_dict().values(), changed_model.state_dict().values()):
        assert torch.equal(a, b)
    # The fresh run's checkpoint replaced the stale one, so the changed settings now resume.
    with warnings.catch_warnings():
        warnings.simplefilter("error", StaleCheckpointWarning)
        assert train(*looped_run(**change), checkpoint=checkpoint).history == fresh.history


def test_the_fingerprint_holds_the_source_of_the_loss_and_the_initial_weights(tmp_path, monkeypatch):
    module = tmp_path / "edited_loss.py"
    module.write_text("from repro.losses import classification_loss as base\n\n"
                      "def loss(model, batch):\n    return base(model, batch)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import edited_loss

    stream, config = ParityStream("adatape", 8, 4, 0), TrainConfig(steps=2, progress=False)
    before = run_fingerprint(model(), edited_loss.loss, stream, config)
    module.write_text(module.read_text() + "# an edit that may change nothing, or anything\n")
    assert [d.split(":")[0] for d in fingerprint_differences(before, run_fingerprint(model(), edited_loss.loss,
                                                                                       stream, config))] \
        == ["code.edited_loss"]
    with torch_seed(1):
        other_weights = TransformerClassifier(model().config)
    assert [d.split(":")[0] for d in fingerprint_differences(before, run_fingerprint(other_weights, edited_loss.loss,
                                                                                       stream, config))] \
        == ["code.edited_loss", "model.initial_weights"]


KILLED_RUN = """
import sys, warnings
import torch
from repro.data.prefix_sums import PrefixSumStream
from repro.losses import progressive_loss
from repro.models.looped import LoopedConfig, LoopedTransformer
from repro.seeding import torch_seed
from repro.train import StaleCheckpointWarning, TrainConfig, train

warnings.simplefilter("error", StaleCheckpointWarning)  # a resume that is refused fails the test
torch.set_num_threads(1)


class ReportingStream(PrefixSumStream):
    def batch_at(self, step):
        print("step", step, flush=True)  # tells the killer how far the run got
        return super().batch_at(step)


checkpoint, output = sys.argv[1], sys.argv[2]
with torch_seed(0):
    model = LoopedTransformer(LoopedConfig(vocab=3, outputs=2, iterations=3, width=16, heads=2, mlp_hidden=32,
                                           max_offset=4))
held_out = PrefixSumStream(8, 32, seed=1).batch_at(0)
def evaluate(m):
    return {"loss": progressive_loss(3, 0.0)(m, held_out).item()}
config = TrainConfig(steps=200, lr=3e-3, warmup_steps=20, eval_every=20, checkpoint_every=7, seed=3, progress=False)
result = train(model, progressive_loss(3, 0.5), ReportingStream(8, 8, seed=0), config, evaluate, checkpoint=checkpoint)
torch.save({"history": result.history, "model": model.state_dict()}, output + ".tmp")
import os; os.replace(output + ".tmp", output)
"""


def run_script(script, checkpoint, output):
    environment = os.environ | {"OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, str(script), str(checkpoint), str(output)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=environment, cwd=Path(__file__).parents[1])


def test_a_run_killed_at_random_points_resumes_to_the_result_of_an_uninterrupted_one(tmp_path):
    script = tmp_path / "killed_run.py"
    script.write_text(KILLED_RUN)
    straight = run_script(script, tmp_path / "straight.pt", tmp_path / "straight-out.pt")
    _, errors = straight.communicate()
    assert straight.returncode == 0, errors
    draw = random.Random(19)
    kills = sorted(draw.sample(range(10, 195), 4))  # kill once the run has reached these steps ...
    checkpoint, output = tmp_path / "killed.pt", tmp_path / "killed-out.pt"
    runs = []  # (first step the run computed, the kill it got or None, the step of the checkpoint it left)
    while not output.exists():
        process = run_script(script, checkpoint, output)
        first = kill = None
        for line in process.stdout:
            step = int(line.split()[1])
            first = step if first is None else first
            if kills and step >= kills[0]:
                time.sleep(draw.uniform(0, 0.05))  # ... and a random part of a step later: mid-step, mid-write
                process.kill()
                kill = kills.pop(0)
                break
        process.wait()
        errors = process.stderr.read()
        process.stdout.close(), process.stderr.close()
        assert process.returncode == (-signal.SIGKILL if kill is not None else 0), errors
        runs.append((first, kill, torch.load(checkpoint, weights_only=False)["step"] if checkpoint.exists() else 0))
    assert not kills and [kill is not None for _, kill, _ in runs] == [True] * 4 + [False]
    assert runs[0][0] == 0
    for (_, _, saved), (resumed_at, _, _) in zip(runs, runs[1:]):
        assert resumed_at == saved > 0  # each run went on from the checkpoint the kill left behind
    straight_result, resumed_result = (torch.load(path, weights_only=False)
                                       for path in (tmp_path / "straight-out.pt", output))
    assert resumed_result["history"] == straight_result["history"]
    for name, tensor in straight_result["model"].items():
        assert torch.equal(tensor, resumed_result["model"][name]), name


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


def test_a_resumed_rank_restores_the_random_state_of_its_own_training_device_alone(monkeypatch):
    """Rank 0 saves its training device's CUDA state, which every rank shares (they train under one stream); each rank
    restores it on its own device, never the states of devices rank 0 could see but never drew from."""
    model = nn.Linear(2, 2)
    optimizer = torch.optim.AdamW(model.parameters())
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    saved = torch.tensor([7], dtype=torch.uint8)
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
             "rng": torch.get_rng_state(), "cuda_rng": saved, "step": 4, "history": [], "window": []}
    restored = []
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda value, device: restored.append((value, device)))
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", lambda values: pytest.fail("restored every device's state"))
    assert restore(state, model, optimizer, schedule, torch.device("cuda", 1)) == (4, [], [])
    assert restored == [(saved, torch.device("cuda", 1))]
    with pytest.raises(ValueError, match="written by a run on the CPU and holds no CUDA random state"):
        restore(state | {"cuda_rng": cuda_random_state(torch.device("cpu"))}, model, optimizer, schedule,
                torch.device("cuda", 0))
