"""The VQA and retrieval pipeline of notebook 09 with tiny encoders on a few Sort-of-CLEVR scenes: the vanilla/FPSA
pairing, the question-only baseline, the per-question frames, the paired accuracy and recall tables, the cap sweep and
FPSA's pooled share of solves at the cap."""

import math

import pandas as pd
import pytest
import torch

from repro.data.image_text import caption_vocabulary, retrieval_set
from repro.data.images import Preprocessing, channel_statistics
from repro.data.sort_of_clevr import QUESTION_KINDS, sort_of_clevr
from repro.data.vqa import VQASet, sort_of_clevr_vqa
from repro.data.words import Vocabulary
from repro.experiments import vqa_retrieval as vl
from repro.experiments.vqa_retrieval import DELTA, TASKS, VARIANTS, VQA_TASKS, VisionLanguageSettings
from repro.models.self_transformer import fixed_point_layers
from repro.nn import count_parameters
from repro.train import TrainResult

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = dict(seeds=[0], scenes=dict(train=6, validation=2, test=3), easy_vqa_test_questions=10,
            easy_vqa_validation_images=5, batch=4, lr=2e-3, steps={task: 1 for task in TASKS},
            model=dict(patch=16, width=8, heads=2, layers=1, mlp_hidden=16), fpsa=dict(max_iterations=2),
            sweep_caps=(1, 2), sweep_questions=20, curve_steps={task: 10 for task in TASKS})


@pytest.fixture(scope="module")
def settings() -> VisionLanguageSettings:
    return VisionLanguageSettings.of(**TINY)


@pytest.fixture(scope="module")
def data() -> vl.Data:
    """Both VQA slots hold the same Sort-of-CLEVR questions (easy-VQA's loader is tested on its own)."""
    scenes = {"train": sort_of_clevr(6, seed=0), "validation": sort_of_clevr(2, seed=2), "test": sort_of_clevr(3, seed=1)}
    clevr = {split: sort_of_clevr_vqa(part) for split, part in scenes.items()}
    vocabulary = Vocabulary(clevr["train"].questions)
    preprocess = Preprocessing(*channel_statistics(clevr["train"].images))
    retrieval = {split: retrieval_set(scenes[split], seed=0) for split in ("validation", "test")}
    return vl.Data({task: clevr for task in VQA_TASKS}, scenes, retrieval,
                   {task: vocabulary for task in VQA_TASKS} | {"retrieval": caption_vocabulary()},
                   {task: preprocess for task in TASKS})


@pytest.fixture(scope="module")
def trained(settings, data):
    models, curves, walls = vl.train_all(settings, data)
    return models, curves, walls, vl.answer_everything(models, data, settings.seeds)


def vqa_set(questions: list[str], answers: list[int], kinds: list[str] | None = None) -> VQASet:
    count = len(questions)
    return VQASet(torch.zeros(1, 3, 4, 4, dtype=torch.uint8), torch.zeros(count, dtype=torch.long), questions,
                  torch.tensor(answers), ("no", "yes"), kinds or ["yes/no"] * count, torch.zeros(count, dtype=torch.bool))


def test_settings_reject_an_unknown_key_and_vary_the_cap_on_request(settings):
    with pytest.raises(ValueError, match="unknown setting"):
        VisionLanguageSettings.of(**TINY | dict(step=3))
    assert settings.fpsa_config().max_iterations == 2 and settings.fpsa_config(max_iterations=5).max_iterations == 5
    assert settings.sweep_caps == (1, 2)


def test_the_question_only_baseline_answers_by_the_training_answers_of_the_same_text():
    train_set = vqa_set(["is it red", "is it red", "is it big"], [1, 1, 0])
    test_set = vqa_set(["is it red", "is it big", "never seen"], [1, 1, 0])
    validation = vqa_set(["is it big", "is it red"], [0, 0])
    data = vl.Data({"easy-VQA": {"train": train_set, "validation": validation, "test": test_set}}, {}, {}, {}, {})
    assert vl.question_only_answers(data, "easy-VQA").tolist() == [1, 0, 1]  # unseen text: the overall mode
    assert vl.question_only_answers(data, "easy-VQA", "validation").tolist() == [0, 1]


def test_question_groups_split_relational_questions_only_where_there_are_some():
    frame = pd.DataFrame({"correct": [True, False, True], "kind": ["shape", "closest", "shape"],
                          "relational": [False, True, False]})
    groups = vl.question_groups(frame)
    assert list(groups) == ["all", "closest", "shape", "non-relational", "relational"]
    assert groups["non-relational"].correct.mean() == 1 and len(groups["relational"]) == 1
    assert list(vl.question_groups(frame[~frame.relational])) == ["all", "shape"]


def test_the_variants_of_a_pair_share_their_weights_and_add_no_parameter(settings, data):
    for task in ("Sort-of-CLEVR", "retrieval"):
        vanilla, fpsa = (vl.build(settings, data, task, 0, variant) for variant in VARIANTS)
        assert count_parameters(vanilla) == count_parameters(fpsa)
        assert all(torch.equal(a, b) for a, b in zip(vanilla.state_dict().values(), fpsa.state_dict().values()))
        assert fixed_point_layers(fpsa) and not fixed_point_layers(vanilla)
    table = vl.parameters_table(settings, data)
    assert list(table.index) == list(TASKS) and (table["FPSA"] == table["vanilla"]).all()
    assert table.loc["retrieval", "model"] == "dual encoder"


def test_training_runs_every_pair_and_answers_every_test_question(settings, data, trained):
    models, curves, walls, answered = trained
    assert set(models) == {(task, 0, variant) for task in TASKS for variant in VARIANTS}
    assert set(curves.task) == set(TASKS) and "train_loss" in curves and len(walls) == 2 * len(TASKS)
    questions = len(data.vqa["Sort-of-CLEVR"]["test"])
    vanilla, fpsa = answered["Sort-of-CLEVR", 0, "vanilla"], answered["Sort-of-CLEVR", 0, "FPSA"]
    assert len(vanilla) == len(fpsa) == questions
    assert (vanilla.evaluations == 1).all() and "unconverged" not in vanilla
    assert fpsa.evaluations.between(1, 2).all() and fpsa.unconverged.between(0, 1).all() and (fpsa.residual >= 0).all()
    assert len(vl.answer_all(models["Sort-of-CLEVR", 0, "FPSA"], data, "Sort-of-CLEVR", limit=7)) == 7
    seconds = vl.train_seconds_table(walls)
    assert list(seconds.columns) == [*VARIANTS, "FPSA / vanilla"]


def test_the_accuracy_table_pairs_the_variants_by_seed():
    def frame(correct):
        return pd.DataFrame({"correct": correct, "kind": ["shape", "shape", "closest", "closest"],
                             "relational": [False, False, True, True], "evaluations": [1.0, 2.0, 3.0, 4.0],
                             "unconverged": [0.0, 0.0, 1.0, 1.0], "residual": [0.1, 0.1, 0.2, 0.4]})
    answered = {("Sort-of-CLEVR", 0, "vanilla"): frame([True, False, False, False]),
                ("Sort-of-CLEVR", 0, "FPSA"): frame([True, True, True, False]),
                ("Sort-of-CLEVR", 1, "vanilla"): frame([True, True, False, False]),
                ("Sort-of-CLEVR", 1, "FPSA"): frame([True, True, False, False])}
    blind = {"Sort-of-CLEVR": {"all": 0.5, "shape": 0.5, "closest": 0.5, "non-relational": 0.5, "relational": 0.5}}
    table, per_seed = vl.accuracy_table(answered, blind, "Sort-of-CLEVR", [0, 1])
    kinds = [kind for kind in QUESTION_KINDS if kind in ("shape", "closest")]
    assert list(table.index) == ["all", "non-relational", "relational", *kinds]
    assert per_seed.loc[("all", 0), DELTA] == pytest.approx(0.5) and per_seed.loc[("all", 1), DELTA] == 0
    assert per_seed.loc[("relational", 0), DELTA] == pytest.approx(0.5)
    assert table.loc["all", DELTA] == "0.250 ± 0.354"
    assert table.loc["relational", "FPSA evaluations per layer"] == "3.500 ± 0.000"
    above = vl.above_question_only({"Sort-of-CLEVR": per_seed}, blind, [("Sort-of-CLEVR", "shape"), ("Sort-of-CLEVR", "closest")])
    assert above.tolist() == pytest.approx([0.25, -0.5])
    spend = vl.relational_spend(answered, [0, 1])
    assert spend["relational − non-relational evaluations"].tolist() == [2.0, 2.0]
    assert spend["relational − non-relational residual"].tolist() == pytest.approx([0.2, 0.2])


def test_the_cap_sweep_ends_at_the_training_configuration(settings, data, trained):
    models, _, _, answered = trained
    sweep = vl.cap_sweep(settings, data, models)
    assert set(sweep.cap) == {1, 2} and set(sweep.task) == set(VQA_TASKS)
    assert set(sweep.questions) == {"all", "non-relational", "relational"}
    assert (sweep[sweep.cap == 1]["evaluations per layer"] == 1).all()
    fpsa = models["Sort-of-CLEVR", 0, "FPSA"]
    assert all(layer.config.max_iterations == 2 for layer in fixed_point_layers(fpsa))
    assert vl.sweep_figure(sweep, answered, settings) is not None


def test_retrieval_ranks_captions_and_negatives_and_records_every_solve(settings, data, trained):
    models = trained[0]
    retrieved, converged = vl.retrieve_all(models, data, settings.seeds)
    assert list(retrieved.variant) == list(VARIANTS)
    recalls = [c for c in retrieved.columns if " R@" in c]
    assert len(recalls) == 6 and retrieved[recalls].stack().between(0, 1).all()
    assert retrieved["mean recall"].tolist() == pytest.approx(retrieved[recalls].mean(axis=1).tolist())
    assert list(retrieved.columns).index("mean recall") == len(recalls) + 2
    scenes = len(data.scenes["test"].scenes)
    assert converged[0].numel() == settings.model["layers"] * 3 * scenes  # image tower, captions, negatives
    _, vanilla = vl.retrieve(models["retrieval", 0, "vanilla"], vl.retrieval_inputs(data))
    assert vanilla.numel() == 0


def test_the_reference_recalls_lie_between_chance_and_one(data):
    oracle, chance, scenes_true = vl.reference_recalls(data)
    n = len(data.scenes["test"].scenes)
    assert chance["image→text R@1"] == pytest.approx(1 / (2 * n)) and chance["text→image R@5"] == pytest.approx(5 / n)
    # chance is k / gallery size, unclipped: above 1 where k exceeds this tiny gallery
    assert all(0 < value <= 1 for value in oracle.values()) and (scenes_true >= 1).all()
    assert all(chance[f"{side} R@1"] <= oracle[f"{side} R@1"] for side in ("image→text", "text→image"))


def test_the_recall_table_pairs_by_seed_beside_the_oracle_and_chance():
    retrieved = pd.DataFrame({"seed": [0, 0, 1, 1], "variant": ["vanilla", "FPSA"] * 2,
                              "image→text R@1": [0.2, 0.4, 0.3, 0.3], "mean recall": [0.1, 0.3, 0.2, 0.2],
                              "binding": [0.5, 0.75, 0.5, 0.5]})
    table = vl.recall_table(retrieved, {"image→text R@1": 0.9}, {"image→text R@1": 0.1})
    assert list(table.columns) == [*VARIANTS, DELTA, "oracle (exact truth, random ties)", "chance"]
    assert table.loc["image→text R@1", DELTA] == "0.100 ± 0.141"
    assert table.loc["mean recall", "oracle (exact truth, random ties)"] == "0.900"
    assert table.loc["binding", "chance"] == "0.500"


def test_the_share_at_the_cap_pools_vqa_layers_and_retrieval_solves():
    class Model:
        class config:
            layers = 2
    answered = {(task, 0, "FPSA"): pd.DataFrame({"unconverged": [0.0, 0.5]}) for task in VQA_TASKS}
    converged = {0: torch.tensor([True, False, True, True])}
    # VQA: 2 sets x 2 questions x 2 layers = 8 solves, 2 at the cap; retrieval: 4 solves, 1 at the cap
    share = vl.unconverged_share(answered, {(task, 0, "FPSA"): Model for task in VQA_TASKS}, converged, 0)
    assert share == pytest.approx(3 / 12)


def test_the_data_split_scenes_by_seed_and_standardise_by_the_training_images():
    settings = VisionLanguageSettings.of(**TINY)
    data = vl.load_data(settings)
    assert len(data.vqa["easy-VQA"]["test"]) == 10 and len(data.scenes["train"].scenes) == 6
    assert len(data.vqa["easy-VQA"]["train"].images) == 3995 and len(data.vqa["easy-VQA"]["validation"].images) == 5
    assert not torch.equal(data.scenes["train"].images[:3], data.scenes["test"].images)
    assert not torch.equal(data.scenes["validation"].images, data.scenes["test"].images[:2])
    assert data.retrieval["validation"].data is data.scenes["validation"]
    assert len(data.vqa["Sort-of-CLEVR"]["validation"]) == 2 * 36
    assert data.preprocess["retrieval"] is data.preprocess["Sort-of-CLEVR"]
    sizes = vl.datasets_table(data)
    assert sizes.loc[("retrieval", "test"), "images"] == 3 and sizes.loc[("retrieval", "validation"), "images"] == 2
    kinds = vl.question_types_table(data, vl.question_only_accuracy(data))
    assert kinds.loc["Sort-of-CLEVR", "test questions"].sum() == 3 * 36
    assert not math.isnan(kinds["question-only accuracy"].sum())


# --- competence curves --------------------------------------------------------------------------

def test_the_validation_score_is_the_gates_quantity_on_the_validation_split(data, trained):
    models = trained[0]
    model = models["Sort-of-CLEVR", 0, "vanilla"]
    scores = vl.validation_score(data, "Sort-of-CLEVR")(model)
    answered = vl.answer_all(model, data, "Sort-of-CLEVR", split="validation")
    question_only = vl.question_only_accuracy(data, "validation")["Sort-of-CLEVR"]
    margins = [part.correct.mean() - question_only[kind] for kind, part in answered.groupby("kind")]
    assert len(answered) == 2 * 36 and scores[vl.CURVE_SCORE] == pytest.approx(min(margins))
    assert {f"accuracy: {kind}" for kind in QUESTION_KINDS} <= set(scores)
    recalls = vl.validation_score(data, "retrieval")(models["retrieval", 0, "vanilla"])
    measures, _ = vl.retrieve(models["retrieval", 0, "vanilla"], vl.retrieval_inputs(data, "validation"))
    assert recalls[vl.CURVE_SCORE] == pytest.approx(sum(measures[n] for n in vl.recall_names(measures)) / 6)


def test_a_competence_curve_scores_every_tenth_and_projects_to_its_gate(settings, data):
    curve = vl.competence_curve(settings, data, "retrieval", 0)
    assert [row["step"] for row in curve.history] == list(range(1, 11))
    assert all(0 <= row[vl.CURVE_SCORE] <= 1 for row in curve.history)
    assert vl.competence_gate("easy-VQA") is vl.competence_gate("Sort-of-CLEVR")
    assert (vl.competence_gate("retrieval").key, vl.competence_gate("retrieval").threshold) == ("retrieval_learned", 0.15)
    rising = TrainResult([{"step": s, vl.CURVE_SCORE: 0.01 * math.log(s)} for s in range(100, 1001, 100)], 50.0)
    budget = vl.competence_budget("easy-VQA", 0, rising, 1000)
    assert budget.threshold == 0.10 and abs(budget.steps - math.exp(10)) <= 2 and budget.seconds_per_step == 0.05
    frame = pd.DataFrame([{"task": task, **row} for task in ("easy-VQA", "retrieval") for row in rising.history])
    assert vl.competence_figure(frame) is not None
