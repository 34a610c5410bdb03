"""The parity pipeline of notebook 01 (`repro.experiments.parity`): the zoo, one training recipe, the per-example
compute against the +1 count, and the per-seed quantities claim A1 is decided on."""

import math

import pandas as pd
import pytest
import torch

from repro.data.parity import GENERATORS
from repro.experiments import parity
from repro.experiments.parity import (ADATAPE_INPUT, ADATAPE_LEARNABLE, ADATAPE_ZERO, BASELINES, CONTROL, MODELS,
                                      SOLVED, TRANSFORMER, UNIVERSAL, UNSEEN_FROM, ParitySettings)
from repro.models.adatape import AdaTapeParity
from repro.models.transformer import TransformerClassifier
from repro.models.universal import UniversalTransformer
from repro.train import steps_to_criterion

pytestmark = pytest.mark.usefixtures("one_thread")

VALUES = dict(seeds=[0, 1], generators=("adatape", "act"), steps=2, batch=8, lr=1e-3, width=8, heads=2, layers=1,
              eval_size=16, eval_every=1, ut_max_steps=2, ponder_weight=1e-3, tape={"adatape": (4, 2.0), "act": (4, 2.0)},
              control_length=6)
TASKS = ("adatape", "act", CONTROL)


def settings(**changes) -> ParitySettings:
    return ParitySettings.of(**(VALUES | changes))


@pytest.fixture(scope="module")
def trained():
    S = settings()
    evaluation = parity.evaluation_sets(S, torch.device("cpu"))
    keys = []
    curves, finals, per_example = parity.train_zoo(S, evaluation, checkpoint=lambda *key: keys.append(key))
    return S, evaluation, curves, finals, per_example, keys


def test_settings_reject_a_misspelled_key_and_a_non_positive_size():
    with pytest.raises(ValueError, match="unknown setting.*'step'"):
        ParitySettings.of(**{k: v for k, v in VALUES.items() if k != "steps"}, step=2)
    with pytest.raises(ValueError, match="eval_every"):
        settings(eval_every=0)
    assert settings().seeds == (0, 1)


@pytest.mark.parametrize("kind", GENERATORS)
def test_the_zoo_builds_each_model_for_each_generator(kind):
    S = settings()
    task = parity.tasks(S)[kind]
    kinds = {TRANSFORMER: TransformerClassifier, UNIVERSAL: UniversalTransformer, ADATAPE_INPUT: AdaTapeParity,
             ADATAPE_LEARNABLE: AdaTapeParity, ADATAPE_ZERO: AdaTapeParity}
    for name, cls in kinds.items():
        model = parity.build(S, name, task)
        assert isinstance(model, cls)
        logits, aux = model(torch.randint(0, 3, (5, GENERATORS[kind])))
        assert logits.shape == (5, 2) and aux["token_layers"].shape == (5,)
    assert parity.build(S, ADATAPE_INPUT, task).config.bank == "input"
    assert parity.build(S, ADATAPE_LEARNABLE, task).config.bank == "learnable"
    assert parity.build(S, ADATAPE_ZERO, task).config.zero_tape and not parity.build(S, ADATAPE_INPUT, task).config.zero_tape
    assert parity.build(S, ADATAPE_INPUT, task).encoder.config.max_tape == S.tape[kind][0]
    assert parity.build(S, UNIVERSAL, task).config.ponder_weight == S.ponder_weight


def test_tasks_hold_out_the_tail_of_the_counts_and_the_control_holds_out_nothing():
    S = settings()
    tasks = parity.tasks(S)
    assert list(tasks) == list(TASKS)
    assert tasks[CONTROL].length == S.control_length and tasks[CONTROL].train_counts() is None
    splits = parity.evaluation_sets(S, torch.device("cpu"))
    assert set(splits[CONTROL]) == {"seen"}
    for kind in ("adatape", "act"):
        seen, unseen = (splits[kind][split][0] for split in ("seen", "unseen"))
        assert ((seen == 2).sum(dim=1) < UNSEEN_FROM[kind]).all() and ((unseen == 2).sum(dim=1) >= UNSEEN_FROM[kind]).all()
        batch = tasks[kind].stream(64, seed=0).batch_at(0)[0]
        assert ((batch == 2).sum(dim=1) < UNSEEN_FROM[kind]).all()


def test_parameters_has_a_row_per_generator_and_model_and_the_universal_transformer_ties_its_block():
    counts = parity.parameters(settings(layers=3)).set_index(["generator", "model"]).parameters
    assert list(counts.index) == [(kind, model) for kind in GENERATORS for model in MODELS] + [
        (CONTROL, model) for model in BASELINES]
    for kind in TASKS:
        assert counts[kind, UNIVERSAL] < counts[kind, TRANSFORMER]


class Fixed(torch.nn.Module):
    """A model that returns given logits and aux, whatever the input."""

    def __init__(self, logits, aux):
        super().__init__()
        self.logits, self.aux = logits, aux

    def forward(self, tokens):
        return self.logits, self.aux


def test_evaluate_by_hand():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 1.0], [0.0, 5.0]])
    labels = torch.tensor([0, 0, 0, 1])
    aux = {"token_layers": torch.tensor([1, 2, 3, 6]), "tape_length": torch.tensor([1, 1, 2, 4])}
    row = parity.evaluate(Fixed(logits, aux), {"seen": (None, labels), "unseen": (None, 1 - labels)})
    assert row == {"accuracy": 0.75, "accuracy_unseen": 0.25, "token_layers": 3.0, "tape_length": 2.0}
    assert "ponder_steps" in parity.evaluate(Fixed(logits, aux | {"ponder_steps": torch.ones(4)}), {"seen": (None, labels)})


def test_examples_count_the_plus_ones_and_the_tape_share_reads_the_selected_entries():
    inputs = torch.tensor([[2, 2, 0, 1], [1, 0, 0, 2]])
    logits, labels = torch.tensor([[0.0, 1.0], [0.0, 1.0]]), torch.tensor([0, 1])
    rows = parity.examples(logits, {"tape_length": torch.tensor([3, 1])}, inputs, labels, generator="g", seed=4)
    assert rows.to_dict("list") == {"generator": ["g", "g"], "seed": [4, 4], "plus_ones": [2, 1],
                                    "compute": [3.0, 1.0], "correct": [False, True]}
    assert parity.examples(logits, {"token_layers": torch.ones(2)}, inputs, labels) is None
    # Selections: example 0 read entries 0 (+1) and 2 (0) once each, example 1 entry 3 (+1) twice: 3 of 4 are +1.
    selected = torch.tensor([[1, 0, 1, 0], [0, 0, 0, 2]])
    assert parity.tape_plus_one_share({"selected": selected}, inputs) == 0.75


def test_train_zoo_returns_tidy_frames(trained):
    S, evaluation, curves, finals, per_example, keys = trained
    runs = [(kind, model, seed) for kind in GENERATORS for model in MODELS for seed in S.seeds] + [
        (CONTROL, model, seed) for model in BASELINES for seed in S.seeds]
    assert keys == [(*run, S.steps) for run in runs]
    assert list(zip(finals.generator, finals.model, finals.seed)) == runs
    assert len(curves) == len(runs) * S.steps // S.eval_every and set(curves.step) == {1, 2}
    assert curves.accuracy.between(0, 1).all() and (finals.wall_seconds > 0).all()
    # Only the input-bank AdaTape reports what its tape read.
    share = finals.set_index("model").tape_plus_one_share
    assert share[ADATAPE_INPUT].between(0, 1).all() and share.drop(ADATAPE_INPUT).isna().all()
    assert finals.accuracy_unseen.notna().sum() == len(GENERATORS) * len(MODELS) * len(S.seeds)
    assert ((finals.steps_to_criterion >= 1) | finals.steps_to_criterion.isna()).all()
    # One row per held-out example (both splits) of every adaptive run; the Transformer spends the same on every input.
    assert set(per_example.model) == {UNIVERSAL, ADATAPE_INPUT, ADATAPE_LEARNABLE, ADATAPE_ZERO}
    assert len(per_example) == (len(GENERATORS) * 4 * 2 + 1) * len(S.seeds) * S.eval_size
    inputs = torch.cat([evaluation["act"]["seen"][0], evaluation["act"]["unseen"][0]])
    one = per_example[(per_example.generator == "act") & (per_example.model == UNIVERSAL) & (per_example.seed == 0)]
    assert one.plus_ones.tolist() == (inputs == 2).sum(dim=1).tolist()
    tape = per_example[per_example.model != UNIVERSAL].compute
    assert tape.between(0, S.tape["act"][0]).all() and (tape == tape.round()).all()


def test_fit_is_a_pure_function_of_its_seed(trained):
    S, evaluation, _, finals, _, _ = trained
    _, again = parity.fit(S, ADATAPE_INPUT, parity.tasks(S)["adatape"], 1, evaluation["adatape"])
    row = finals[(finals.generator == "adatape") & (finals.model == ADATAPE_INPUT) & (finals.seed == 1)].iloc[0]
    assert again.history[-1]["accuracy"] == row.accuracy and again.history[-1]["train_loss"] == row.train_loss


def test_the_table_summarises_over_seeds_and_joins_the_parameters(trained):
    S, _, _, finals, _, _ = trained
    counts = parity.parameters(S)
    table = parity.parity_table(finals, counts)
    assert list(table.index) == [(kind, model) for kind in GENERATORS for model in MODELS] + [
        (CONTROL, model) for model in BASELINES]
    row = table.loc["act", ADATAPE_INPUT]
    values = finals[(finals.generator == "act") & (finals.model == ADATAPE_INPUT)].accuracy
    assert row.seeds == 2 and math.isclose(row.accuracy_mean, values.mean())
    assert math.isclose(row.accuracy_std, values.std(ddof=1))
    assert row.accuracy == f"{values.mean():.3f} ± {values.std(ddof=1):.3f}"
    assert math.isnan(table.loc["act", TRANSFORMER].tape_length) and table.loc["act", UNIVERSAL].ponder_steps >= 1
    assert table.loc[CONTROL, TRANSFORMER].accuracy_unseen_counts == "-"
    assert table.parameters.tolist() == counts.parameters.tolist()


def test_compute_correlation_by_hand():
    frame = pd.DataFrame({"generator": "g", "model": ["a"] * 4 + ["b"] * 3,
                          "plus_ones": [1, 2, 3, 4, 1, 2, 3], "compute": [1.0, 3.0, 2.0, 4.0, 5.0, 5.0, 5.0]})
    rho = parity.compute_correlation(frame)
    assert math.isclose(rho["g", "a"], 0.8)  # ranks 1,3,2,4 against 1,2,3,4: 1 - 6 * 2 / (4 * 15)
    assert math.isnan(rho["g", "b"])  # a model that spends the same on every input


def test_per_seed_quantities_and_the_gates_by_hand():
    finals = pd.DataFrame({"generator": ["act"] * 4 + [CONTROL] * 4,
                           "model": [ADATAPE_INPUT, ADATAPE_INPUT, TRANSFORMER, TRANSFORMER] + [TRANSFORMER, TRANSFORMER,
                                                                                             UNIVERSAL, UNIVERSAL],
                           "seed": [0, 1] * 4, "accuracy": [0.97, 0.96, 0.5, 0.51, 0.99, 1.0, 0.96, 0.98],
                           "steps_to_criterion": [20, 30, math.nan, math.nan, 10, 10, 40, 40]})
    assert parity.baselines_budget(finals, "act", 90) == 3.0
    assert parity.baselines_budget(finals.assign(steps_to_criterion=math.nan), "act", 90) == 0.0
    assert parity.baselines_learn_control(finals) == 0.96
    assert parity.per_seed(finals, "act", TRANSFORMER, (1, 0)).tolist() == [0.51, 0.5]
    assert parity.steps_text(pd.Series([20.0, math.nan])) == "20, never"


def test_the_figures_have_a_panel_per_generator_and_labelled_axes(trained):
    S, _, curves, _, per_example, _ = trained
    for figure in (parity.learning_curves(curves), parity.compute_against_plus_ones(per_example)):
        assert len(figure.axes) == len(TASKS)
        assert all(ax.get_xlabel() and ax.get_ylabel() for ax in figure.axes)


def test_the_winner_projection_reads_adatapes_curves_on_its_task_at_its_measured_speed():
    """Hand-made frames: AdaTape (input bank) on the adatape task rises log-linearly on both seeds (0.5 + 0.05 ln s
    reaches SOLVED = 0.95 at e^9, about 8,104 steps); the other task's and the other model's rows are not read."""
    steps = [100, 200, 300, 400]
    rows = [{"generator": task, "model": model, "seed": seed, "step": s,
             "accuracy": 0.5 + 0.05 * math.log(s) if (task, model) == ("adatape", ADATAPE_INPUT) else 0.99}
            for task in ("adatape", "act") for model in (ADATAPE_INPUT, TRANSFORMER) for seed in (0, 1) for s in steps]
    curves = pd.DataFrame(rows)
    finals = pd.DataFrame([{"generator": task, "model": model, "seed": seed,
                            "wall_seconds": 80.0 if task == "adatape" else 1.0}
                           for task in ("adatape", "act") for model in (ADATAPE_INPUT, TRANSFORMER) for seed in (0, 1)])
    projection = parity.winner_projection(curves, finals, "adatape", 400)
    assert projection.steps == math.ceil(math.exp(9)) and projection.seeds_needed == 2
    assert projection.seconds_per_step == 0.2 and not any(seed.measured for seed in projection.seeds)


def test_the_winner_projection_counts_a_seed_where_the_gate_does_at_its_first_step_at_the_criterion():
    """A seed that reached SOLVED at step 200 and fell back is reached there for `baselines_budget`
    (`steps_to_criterion`), so the projection counts it there too, not as a curve to extrapolate."""
    curves = pd.DataFrame([{"generator": "adatape", "model": ADATAPE_INPUT, "seed": 0, "step": s, "accuracy": a}
                           for s, a in zip([100, 200, 300, 400], [0.6, 0.96, 0.9, 0.93])])
    finals = pd.DataFrame([{"generator": "adatape", "model": ADATAPE_INPUT, "seed": 0, "wall_seconds": 40.0,
                            "steps_to_criterion": steps_to_criterion(curves.to_dict("records"), "accuracy", SOLVED)}])
    projection = parity.winner_projection(curves, finals, "adatape", 400)
    assert projection.measured and projection.steps == 200 == finals.steps_to_criterion[0]
    assert parity.baselines_budget(finals, "adatape", 400) == 2.0
