"""Visual question answering and image-text retrieval with vanilla and fixed-point attention (notebook 09).

S5 asks whether a vision-language transformer answers and retrieves better with fixed-point self-attention (FPSA).
The answer is only as good as the pairing, so for a (task, seed) both variants start from the same weights (`build`:
the stream "vl-model", task, seed; FPSA is swapped in without new parameters) and see the same batches (`fit`: the
stream "vl-batches", task, seed). Then:

- `answer_all` scores every test question of a VQA set once and records, per question, what FPSA spent on it;
  `accuracies` reads the accuracy per (question group, seed, variant) and `accuracy_table` the section's table;
- `question_only_accuracy` is what a model that never looks at the image reaches (the most frequent training answer
  of the same question text), the gate a VQA model must pass before its attention can be compared;
- `relational_spend` asks whether FPSA thinks longer on relational questions, `cap_sweep` re-scores the trained
  FPSA models with other iteration caps;
- `retrieve` ranks captions and hard negatives for every test image (and images for every caption), `recall_table`
  sets the recalls beside an exact-truth oracle and chance;
- `competence_curve` trains one more vanilla model per task for longer and scores the gates' own quantities on a
  validation split at every tenth (`validation_score`): the learning curve from which `competence_budget` projects
  the budget a gate needs. It is a model of its own; no paired run is stopped, chosen or scored by it.

Frames are tidy: one row per (task, seed, variant, question) or (task, seed, variant, question group).
"""

import textwrap
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
import torch
import torch.nn.functional as F

from repro import plots
from repro.claims import Gate, gate_of
from repro.data.image_text import MAX_CAPTION_WORDS, CaptionBatches, RetrievalSet, caption_vocabulary, retrieval_set
from repro.data.images import Preprocessing, channel_statistics
from repro.data.scene_captions import ATTRIBUTES, caption_holds, caption_text
from repro.data.sort_of_clevr import QUESTION_KINDS, RELATIONAL_KINDS, SortOfClevr, all_questions, sort_of_clevr
from repro.data.vqa import QuestionBatches, VQASet, easy_vqa, hold_out_images, questions_in_order, sort_of_clevr_vqa
from repro.data.words import Vocabulary
from repro.experiments.fine_tuning import competence_budget as budget_from_curve
from repro.experiments.paired import difference, runs
from repro.models.self_transformer import (FixedPointAttentionConfig, fixed_point_aux, fixed_point_layers,
                                           swap_self_attention)
from repro.models.vision_language import DualEncoder, FusionEncoder, VisionLanguageConfig, contrastive_loss
from repro.models.vit import attention_evaluations
from repro.nn import count_parameters
from repro.projection import Projection
from repro.results import mean_std_text, spearman
from repro.retrieval import recall_at_k
from repro.seeding import derive, torch_seed
from repro.study import Settings
from repro.train import TrainConfig, TrainResult, train

VQA_TASKS = ("easy-VQA", "Sort-of-CLEVR")
TASKS = (*VQA_TASKS, "retrieval")
VARIANTS = ("vanilla", "FPSA")
DELTA = "FPSA − vanilla"
ORDER = {"easy-VQA": ["all", "yes/no", "shape", "colour"],
         "Sort-of-CLEVR": ["all", "non-relational", "relational", *QUESTION_KINDS]}
"""The rows of each VQA set's accuracy table, in order (those its questions have)."""
KS = (1, 5, 10)


@dataclass(frozen=True)
class VisionLanguageSettings(Settings):
    """The vision-language study's settings: the data sizes, one training recipe for every run, the encoders' sizes
    and FPSA's options (both as keyword dicts of their configs), and the test-time cap sweep."""
    scenes: dict | None  # Sort-of-CLEVR scenes per split {"train": n, "validation": n, "test": n}; None: not runnable
    easy_vqa_test_questions: int | None  # score the first this many easy-VQA test questions; None: all
    easy_vqa_validation_images: int | None  # easy-VQA training images held out with their questions (validation)
    batch: int
    lr: float
    steps: dict  # training steps per task (None where the profile is not runnable)
    model: dict  # `VisionLanguageConfig` keywords but the vocabulary and the question length
    fpsa: dict  # `FixedPointAttentionConfig` keywords; empty: its defaults
    sweep_caps: tuple[int, ...]  # test-time iteration caps of the FPSA models
    sweep_questions: int | None  # the first this many test questions of each set in the sweep; None: all
    curve_steps: dict  # the competence curve's steps per task (`competence_curve`)

    def fpsa_config(self, **changes) -> FixedPointAttentionConfig:
        return FixedPointAttentionConfig(**(self.fpsa | changes))


@dataclass
class Data:
    """Every set of the study: the VQA sets per task and split, the Sort-of-CLEVR scenes per split (retrieval trains
    on the training scenes), the retrieval sets of the validation and test scenes, and each task's vocabulary and
    pixel standardisation."""
    vqa: dict[str, dict[str, VQASet]]
    scenes: dict[str, SortOfClevr]
    retrieval: dict[str, RetrievalSet]
    """{"validation": ..., "test": ...}: one caption and one hard negative per scene of the split."""
    vocabulary: dict[str, Vocabulary]
    preprocess: dict[str, Preprocessing]


def load_data(settings: VisionLanguageSettings) -> Data:
    """easy-VQA from its wheel, `easy_vqa_validation_images` of its training images held out with their questions
    (the named stream "easy-vqa-validation") as the validation split; Sort-of-CLEVR scenes from the named seeds 0
    (training), 2 (validation) and 1 (test), so no scene is in two splits; one caption and one hard negative per
    validation (seed 1) and test scene (seed 0). Vocabularies and the per-channel pixel standardisation come from the
    training split alone (retrieval reuses Sort-of-CLEVR's: the same training images)."""
    S = settings
    train, validation = hold_out_images(easy_vqa("train"), S.easy_vqa_validation_images, "easy-vqa-validation")
    easy = {"train": train, "validation": validation, "test": easy_vqa("test")}
    if S.easy_vqa_test_questions:
        easy["test"] = easy["test"].first(S.easy_vqa_test_questions)
    scenes = {split: sort_of_clevr(S.scenes[split], seed=seed)
              for split, seed in (("train", 0), ("validation", 2), ("test", 1))}
    vqa = {"easy-VQA": easy, "Sort-of-CLEVR": {split: sort_of_clevr_vqa(data) for split, data in scenes.items()}}
    vocabulary = {task: Vocabulary(vqa[task]["train"].questions) for task in VQA_TASKS} | {"retrieval": caption_vocabulary()}
    preprocess = {task: Preprocessing(*channel_statistics(vqa[task]["train"].images)) for task in VQA_TASKS}
    preprocess["retrieval"] = preprocess["Sort-of-CLEVR"]
    retrieval = {"validation": retrieval_set(scenes["validation"], seed=1), "test": retrieval_set(scenes["test"], seed=0)}
    return Data(vqa, scenes, retrieval, vocabulary, preprocess)


def questions_of(data: Data, task: str, split: str = "test", limit: int | None = None) -> VQASet:
    """The `split` questions of a VQA set, the first `limit` of them (None: all)."""
    questions = data.vqa[task][split]
    return questions if limit is None else questions.first(limit)


def scored(data: Data, task: str, correct: torch.Tensor, limit: int | None = None, split: str = "test") -> pd.DataFrame:
    """One row per `split` question (the first `limit`): correct or not, its type, relational or not."""
    questions = questions_of(data, task, split, limit)
    return pd.DataFrame({"correct": correct.numpy(), "kind": questions.kinds, "relational": questions.relational.numpy()})


def question_groups(frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """All questions, each type, and (where there are relational ones) non-relational against relational."""
    groups = {"all": frame, **dict(tuple(frame.groupby("kind")))}
    if frame.relational.any():
        groups |= {"non-relational": frame[~frame.relational], "relational": frame[frame.relational]}
    return groups


def question_only_answers(data: Data, task: str, split: str = "test") -> torch.Tensor:
    """Every `split` question answered with the most frequent training answer of the same question text (the most
    frequent training answer overall for a text never seen in training)."""
    train_set, asked = data.vqa[task]["train"], data.vqa[task][split]
    by_text = pd.Series(train_set.answers.tolist()).groupby(train_set.questions).agg(lambda a: a.mode().iloc[0])
    overall = int(train_set.answers.mode().values)
    return torch.tensor([int(by_text.get(text, overall)) for text in asked.questions])


def question_only_accuracy(data: Data, split: str = "test") -> dict[str, dict[str, float]]:
    """{task: {question group: accuracy}} of the question-only baseline on the `split` questions."""
    return {task: {name: part.correct.mean() for name, part in question_groups(scored(
        data, task, question_only_answers(data, task, split) == data.vqa[task][split].answers, split=split)).items()}
        for task in VQA_TASKS}


def datasets_table(data: Data) -> pd.DataFrame:
    """One row per (set, split): images, questions or captions, answers and vocabulary size."""
    words = len(data.vocabulary["retrieval"]) - 1
    return pd.DataFrame([
        *[{"set": task, "split": split, "images": len(questions.images), "questions or captions": len(questions),
           "answers": len(questions.answer_words), "vocabulary (words)": len(data.vocabulary[task]) - 1}
          for task in VQA_TASKS for split, questions in data.vqa[task].items()],
        {"set": "retrieval", "split": "train", "images": len(data.scenes["train"].scenes),
         "questions or captions": "a fresh caption per draw", "answers": "-", "vocabulary (words)": words},
        *[{"set": "retrieval", "split": split, "images": len(retrieval.data.scenes),
           "questions or captions": f"{len(retrieval.captions)} + {len(retrieval.negatives)} hard negatives",
           "answers": "-", "vocabulary (words)": words} for split, retrieval in data.retrieval.items()]
    ]).set_index(["set", "split"])


def question_types_table(data: Data, question_only: dict) -> pd.DataFrame:
    """One row per (set, question type) in the order the types first occur: test questions, relational or not, the
    question-only accuracy and the test answers with their counts."""
    rows = []
    for task in VQA_TASKS:
        test = data.vqa[task]["test"]
        answers = [test.answer_words[a] for a in test.answers.tolist()]
        for kind, count in Counter(test.kinds).items():
            rows.append({"set": task, "question type": kind, "test questions": count,
                         "relational": kind in RELATIONAL_KINDS,
                         "question-only accuracy": round(question_only[task][kind], 3),
                         "answers (test)": ", ".join(f"{answer} {times}" for answer, times in Counter(
                             answer for answer, other in zip(answers, test.kinds) if other == kind).most_common())})
    return pd.DataFrame(rows).set_index(["set", "question type"])


def examples_figure(data: Data):
    """Four Sort-of-CLEVR test scenes with a non-relational and a relational question, their caption and its hard
    negative; four easy-VQA test images with one of their questions."""
    scenes, retrieval = data.scenes["test"], data.retrieval["test"]
    fig, axes = plt.subplots(2, 4, figsize=(15, 9.5))
    for ax, index in zip(axes[0], range(4)):
        scene = scenes.scenes[index]
        questions = {q.kind: q for q in all_questions(scene) if q.colour == scene[index % 6].colour}
        ax.imshow(scenes.images[index].permute(1, 2, 0).numpy(), interpolation="nearest")
        lines = [f"{q.text} {q.answer}" for q in (questions["horizontal"], questions["closest"])]
        lines += ["caption: " + caption_text(retrieval.captions[index]),
                  f"negative ({retrieval.changed[index]}): " + caption_text(retrieval.negatives[index])]
        ax.set_title("\n".join(textwrap.fill(line, 52) for line in lines), fontsize=7, loc="left")
        ax.axis("off")
    easy = data.vqa["easy-VQA"]["test"]
    for ax, image in zip(axes[1], range(4)):
        question = int((easy.image_index == image).nonzero()[image % 3])  # one of its first questions
        ax.imshow(easy.images[image].permute(1, 2, 0).numpy())
        ax.set_title(f"{easy.questions[question]} {easy.answer_words[easy.answers[question]]}", fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    return fig


def config(settings: VisionLanguageSettings, data: Data, task: str) -> VisionLanguageConfig:
    """The task's encoder: the profile's sizes, the task's vocabulary, as many word positions as its longest text."""
    longest = max(len(text.split()) for split in data.vqa[task].values() for text in split.questions) \
        if task in data.vqa else MAX_CAPTION_WORDS
    return VisionLanguageConfig(vocab=len(data.vocabulary[task]), max_words=longest, **settings.model)


def build(settings: VisionLanguageSettings, data: Data, task: str, seed: int, variant: str):
    """A fusion encoder (VQA) or a dual encoder (retrieval), the same initial weights for both variants of a (task,
    seed) pair; FPSA swaps the attention in place."""
    with torch_seed(derive("vl-model", task, seed)):
        model = FusionEncoder(config(settings, data, task), len(data.vqa[task]["train"].answer_words)) \
            if task in data.vqa else DualEncoder(config(settings, data, task))
    return swap_self_attention(model, settings.fpsa_config()) if variant == "FPSA" else model


def parameters_table(settings: VisionLanguageSettings, data: Data) -> pd.DataFrame:
    """One row per task: the model and its parameter count with each attention (equal: FPSA adds none)."""
    table = pd.DataFrame([{"task": task, "model": "fusion encoder" if task in data.vqa else "dual encoder",
                           **{variant: count_parameters(build(settings, data, task, 0, variant)) for variant in VARIANTS}}
                          for task in TASKS]).set_index("task")
    if not (table["FPSA"] == table["vanilla"]).all():
        raise AssertionError("the FPSA swap must add no parameter")
    return table


def answer_loss(model: FusionEncoder, batch) -> torch.Tensor:
    images, words, mask, answers = batch
    return F.cross_entropy(model(images, words, mask)[0].float(), answers)


def pair_loss(model: DualEncoder, batch) -> torch.Tensor:
    return contrastive_loss(model(*batch)[0])


def batches(settings: VisionLanguageSettings, data: Data, task: str, seed: int):
    """The task's training stream for a seed: questions in seeded epochs (VQA), or the training scenes each with a
    fresh true caption per draw (retrieval)."""
    stream_seed = derive("vl-batches", task, seed)
    if task in data.vqa:
        return QuestionBatches(data.vqa[task]["train"], data.vocabulary[task], data.preprocess[task], settings.batch,
                               stream_seed)
    return CaptionBatches(data.scenes["train"], data.vocabulary[task], data.preprocess[task], settings.batch,
                          stream_seed)


def fit(settings: VisionLanguageSettings, data: Data, task: str, seed: int, variant: str,
        device: torch.device = torch.device("cpu"), checkpoint: Path | None = None, steps: int | None = None,
        records: int = 5, evaluate: Callable[[torch.nn.Module], dict] | None = None) -> tuple[torch.nn.Module, TrainResult]:
    """One run of `steps` (None: the task's `settings.steps`): AdamW, warm-up over 10% of the steps then cosine decay,
    clipping at 1.0, the training loss recorded (and `evaluate` scored) `records` times, evenly; cross-entropy over
    the answers (VQA) or CLIP's symmetric contrastive loss (retrieval)."""
    model = build(settings, data, task, seed, variant)
    steps = settings.steps[task] if steps is None else steps
    config = TrainConfig(steps=steps, lr=settings.lr, warmup_steps=max(1, steps // 10),
                         eval_every=max(1, steps // records), checkpoint_every=max(1, steps // 5), seed=seed)
    result = train(model, answer_loss if task in data.vqa else pair_loss, batches(settings, data, task, seed), config,
                   evaluate=evaluate, checkpoint=checkpoint, device=device, description=f"{task} {variant} seed {seed}")
    return model, result


def train_all(settings: VisionLanguageSettings, data: Data, device: torch.device = torch.device("cpu"),
              checkpoint: Callable[..., Path | None] = lambda *key: None) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    """Every (task, seed, variant), tasks outermost, each task a paired design (`repro.experiments.paired.runs`: the
    variants of a seed one after the other): the trained models, the loss curves (one row per record) and the
    training seconds (one row per run). `checkpoint(task, variant, seed)` names a run's checkpoint."""
    def arm(task: str, variant: str):
        def run(seed: int) -> dict:
            model, result = fit(settings, data, task, seed, variant, device, checkpoint(task, variant, seed))
            return {"model": model, "history": result.history, "train seconds": result.wall_seconds}
        return run

    done = [{"task": task, **row} for task in TASKS
            for row in runs({variant: arm(task, variant) for variant in VARIANTS}, settings.seeds).to_dict("records")]
    models = {(row["task"], row["seed"], row["variant"]): row["model"] for row in done}
    curves = pd.DataFrame([{"task": row["task"], "variant": row["variant"], "seed": row["seed"], **record}
                           for row in done for record in row["history"]])
    walls = pd.DataFrame([{key: row[key] for key in ("task", "variant", "seed", "train seconds")} for row in done])
    return models, curves, walls


def train_seconds_table(walls: pd.DataFrame) -> pd.DataFrame:
    """Training seconds per (task, seed) of each variant and their ratio."""
    seconds = walls.pivot_table(index=["task", "seed"], columns="variant",
                                values="train seconds").loc[list(TASKS), list(VARIANTS)]
    seconds["FPSA / vanilla"] = seconds["FPSA"] / seconds["vanilla"]
    return seconds.round(2)


def answer_all(model: FusionEncoder, data: Data, task: str, device: torch.device = torch.device("cpu"),
               limit: int | None = None, split: str = "test") -> pd.DataFrame:
    """`scored` rows of the model's answers to the first `limit` `split` questions, with the attention evaluations
    per layer each question received and, for FPSA, the share of its layers' solves stopped at the cap and the mean
    relative residual at the last evaluation."""
    questions = questions_of(data, task, split, limit)
    fixed_point = bool(fixed_point_layers(model))
    correct, spent = [], []
    model.eval()
    with torch.no_grad():
        for images, words, mask, answers in questions_in_order(questions, data.vocabulary[task], data.preprocess[task],
                                                               256):
            logits, aux = model(images.to(device), words.to(device), mask.to(device))
            correct.append(logits.argmax(dim=-1).cpu() == answers)
            row = {"evaluations": (aux["attention_evaluations"] / model.config.layers).cpu().numpy()}
            if fixed_point:
                solves = fixed_point_aux(model)
                row |= {"unconverged": (~solves["converged"]).float().mean(dim=0).cpu().numpy(),
                        "residual": solves["residuals"].float().mean(dim=0).cpu().numpy()}
            spent.append(pd.DataFrame(row))
    return pd.concat([scored(data, task, torch.cat(correct), limit, split), pd.concat(spent, ignore_index=True)], axis=1)


def answer_everything(models: dict, data: Data, seeds, device: torch.device = torch.device("cpu")) -> dict:
    """{(task, seed, variant): `answer_all` frame} over every VQA model."""
    return {(task, seed, variant): answer_all(models[task, seed, variant], data, task, device)
            for task in VQA_TASKS for seed in seeds for variant in VARIANTS}


def accuracies(answered: dict, task: str) -> pd.DataFrame:
    """One row per (question group, seed, variant) of a VQA set: the test accuracy."""
    return pd.DataFrame([{"question type": name, "seed": seed, "variant": variant, "accuracy": part.correct.mean()}
                         for (t, seed, variant), frame in answered.items() if t == task
                         for name, part in question_groups(frame).items()])


def accuracy_table(answered: dict, question_only: dict, task: str, seeds) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the section's table: mean ± std over seeds of each variant and of the paired difference per question group,
    the question-only baseline beside it, and FPSA's evaluations and unconverged share; the per-seed accuracies by
    question group and seed, with their difference)."""
    scores = accuracies(answered, task)
    per_seed = scores.pivot_table(index=["question type", "seed"], columns="variant", values="accuracy")[list(VARIANTS)]
    per_seed[DELTA] = pd.concat({name: difference(rows, "accuracy", "FPSA", "vanilla")
                                 for name, rows in scores.groupby("question type")}, names=["question type"])
    order = [name for name in ORDER[task] if name in question_only[task]]
    table = per_seed.groupby(level="question type").agg(mean_std_text).loc[order]
    table.insert(0, "question-only", [f"{question_only[task][name]:.3f}" for name in order])
    fpsa = {seed: question_groups(answered[task, seed, "FPSA"]) for seed in seeds}
    for column, label in (("evaluations", "FPSA evaluations per layer"), ("unconverged", "FPSA unconverged")):
        table[label] = [mean_std_text([fpsa[seed][name][column].mean() for seed in seeds]) for name in order]
    return table, per_seed


def vqa_figure(tables: dict, per_seed: dict, question_only: dict):
    """Per VQA set: test accuracy by question group, a bar per variant (mean ± sd over seeds), the question-only
    baseline as a black tick."""
    fig, axes = plt.subplots(1, 2, figsize=(13, 3.6), gridspec_kw={"width_ratios": [4, 9]})
    for ax, task in zip(axes, VQA_TASKS):
        order = list(tables[task].index)
        bars = per_seed[task][list(VARIANTS)].stack().rename("accuracy").reset_index()
        sns.barplot(data=bars, x="question type", y="accuracy", hue="variant", order=order, errorbar="sd", ax=ax)
        ax.scatter(range(len(order)), [question_only[task][name] for name in order], color="black", marker="_", s=400,
                   zorder=3, label="question-only")
        ax.set(title=task, ylim=(0, 1), xlabel="question type", ylabel="test accuracy (mean ± sd over seeds)")
        ax.tick_params(axis="x", rotation=30)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def above_question_only(per_seed: dict, question_only: dict, groups) -> pd.Series:
    """Vanilla accuracy (mean over seeds) minus the question-only baseline, per (task, question type) of `groups`."""
    return pd.Series({(task, kind): per_seed[task].loc[kind, "vanilla"].mean() - question_only[task][kind]
                      for task, kind in groups})


def relational_spend(answered: dict, seeds) -> pd.DataFrame:
    """One row per seed of the Sort-of-CLEVR FPSA model: mean evaluations per layer and mean final residual on
    relational minus non-relational questions, and the rank correlation over questions of the final residual with
    being answered correctly."""
    rows = []
    for seed in seeds:
        frame = answered["Sort-of-CLEVR", seed, "FPSA"]
        relational = frame.relational
        rows.append({"seed": seed,
                     "relational − non-relational evaluations": frame[relational].evaluations.mean()
                     - frame[~relational].evaluations.mean(),
                     "relational − non-relational residual": frame[relational].residual.mean()
                     - frame[~relational].residual.mean(),
                     "ρ(final residual, correct)": spearman(frame.residual, frame.correct.astype(float))})
    return pd.DataFrame(rows).set_index("seed")


def cap_sweep(settings: VisionLanguageSettings, data: Data, models: dict,
              device: torch.device = torch.device("cpu")) -> pd.DataFrame:
    """One row per (task, seed, cap, question group: all, non-relational, relational): the trained FPSA model's
    accuracy and evaluations per layer on the first `sweep_questions` test questions with that iteration cap at test
    time (cap 1 is vanilla attention on FPSA-trained weights). The models end at their training configuration."""
    rows = []
    for task in VQA_TASKS:
        for seed in settings.seeds:
            model = models[task, seed, "FPSA"]
            for cap in settings.sweep_caps:
                swap_self_attention(model, settings.fpsa_config(max_iterations=cap))
                frame = answer_all(model, data, task, device, settings.sweep_questions)
                rows += [{"task": task, "seed": seed, "cap": cap, "questions": name, "accuracy": part.correct.mean(),
                          "evaluations per layer": part.evaluations.mean()}
                         for name, part in question_groups(frame).items()
                         if name in ("all", "non-relational", "relational")]
            swap_self_attention(model, settings.fpsa_config())
    return pd.DataFrame(rows)


def sweep_figure(sweep: pd.DataFrame, answered: dict, settings: VisionLanguageSettings):
    """Accuracy against the test-time cap (log scale) per VQA set, mean ± sd over seeds per question group, the
    vanilla-trained models' accuracy on the same questions dashed."""
    trained_at = settings.fpsa_config().max_iterations
    fig, axes = plots.panels(len(VQA_TASKS), width=5.0)
    for ax, task in zip(axes, VQA_TASKS):
        plots.over_seeds(sweep[sweep.task == task], "cap", "accuracy", "questions",
                         f"iteration cap at test time (trained at {trained_at})", "test accuracy", ax, xscale="log",
                         marker="o")
        vanilla = [answered[task, seed, "vanilla"].correct[:settings.sweep_questions].mean() for seed in settings.seeds]
        ax.axhline(sum(vanilla) / len(vanilla), color="gray", linestyle="--", label="vanilla-trained model (all)")
        ax.legend(fontsize=8)
        ax.set(xticks=list(settings.sweep_caps), xticklabels=list(settings.sweep_caps), title=f"{task}: FPSA models")
    fig.tight_layout()
    return fig


@dataclass
class RetrievalTest:
    """The retrieval test set as model inputs: standardised images, encoded captions and hard negatives."""
    images: torch.Tensor
    captions: tuple[torch.Tensor, torch.Tensor]
    negatives: tuple[torch.Tensor, torch.Tensor]
    changed: pd.Series
    """The attribute each negative changed."""


def retrieval_inputs(data: Data, split: str = "test") -> RetrievalTest:
    test, vocabulary = data.retrieval[split], data.vocabulary["retrieval"]
    return RetrievalTest(data.preprocess["retrieval"](test.data.images),
                         vocabulary.encode([caption_text(c) for c in test.captions]),
                         vocabulary.encode([caption_text(c) for c in test.negatives]), pd.Series(test.changed))


def solves(blocks) -> torch.Tensor:
    """The converged flag of every (layer, example) FPSA solve of a tower's last forward; none for vanilla."""
    if not fixed_point_layers(blocks):
        return torch.zeros(0, dtype=torch.bool)
    return fixed_point_aux(blocks)["converged"].flatten().cpu()


def retrieve(model: DualEncoder, test: RetrievalTest, device: torch.device = torch.device("cpu")) -> tuple[dict, torch.Tensor]:
    """(R@k image → text over every test caption and hard negative, R@k text → image over every test image, the
    binding share: images whose own caption outscores its own hard negative, overall and by the attribute changed,
    and the image tower's evaluations per layer; the converged flags of every FPSA solve of both towers)."""
    n = len(test.images)
    positives = torch.arange(n)
    model.eval()
    with torch.no_grad():
        images = model.encode_images(test.images.to(device)).cpu()
        image_evaluations = attention_evaluations(model.image_blocks, n, device).mean().item() / model.config.layers
        converged = [solves(model.image_blocks)]
        captions = model.encode_texts(*(t.to(device) for t in test.captions)).cpu()
        converged.append(solves(model.text_blocks))
        negatives = model.encode_texts(*(t.to(device) for t in test.negatives)).cpu()
        converged.append(solves(model.text_blocks))
    image_to_text = recall_at_k(images @ torch.cat([captions, negatives]).T, positives, KS)
    text_to_image = recall_at_k(captions @ images.T, positives, KS)
    wins = ((images * captions).sum(dim=1) > (images * negatives).sum(dim=1)).float()
    changed = test.changed
    return {**{f"image→text R@{k}": v for k, v in image_to_text.items()},
            **{f"text→image R@{k}": v for k, v in text_to_image.items()},
            "binding": wins.mean().item(),
            **{f"binding: {a}": wins[torch.tensor((changed == a).values)].mean().item()
               for a in ATTRIBUTES if (changed == a).any()},
            "evaluations per layer (image tower)": image_evaluations}, torch.cat(converged)


def retrieve_all(models: dict, data: Data, seeds,
                 device: torch.device = torch.device("cpu")) -> tuple[pd.DataFrame, dict[int, torch.Tensor]]:
    """(one row per (seed, variant): `retrieve`'s measures and the mean of the six recalls; per seed, the converged
    flags of the FPSA model's solves)."""
    test = retrieval_inputs(data)
    retrievals = {(seed, variant): retrieve(models["retrieval", seed, variant], test, device)
                  for seed in seeds for variant in VARIANTS}
    frame = pd.DataFrame([{"seed": seed, "variant": variant, **recalls}
                          for (seed, variant), (recalls, _) in retrievals.items()])
    recalls = recall_names(frame.columns)
    frame.insert(len(recalls) + 2, "mean recall", frame[recalls].mean(axis=1))
    return frame, {seed: retrievals[seed, "FPSA"][1] for seed in seeds}


def recall_names(measures) -> list[str]:
    """The six recalls among `retrieve`'s measures (R@1, R@5, R@10 in both directions): their mean is the score."""
    return [name for name in measures if " R@" in name]


def reference_recalls(data: Data) -> tuple[dict, dict, torch.Tensor]:
    """(the recalls of a model that knows the exact truth and breaks ties at random; chance; per test caption, the
    test scenes it is true of: captions are short, so some are true of more than one)."""
    test = data.retrieval["test"]
    n = len(test.captions)
    true_of = torch.tensor([[caption_holds(c, scene) for scene in data.scenes["test"].scenes]
                            for c in test.captions + test.negatives])
    gallery_true = true_of.sum(dim=0).float()  # per image: captions and negatives true of it
    scenes_true = true_of[:n].sum(dim=1).float()  # per caption: test scenes it is true of
    oracle = {f"image→text R@{k}": torch.clamp(k / gallery_true, max=1).mean().item() for k in KS}
    oracle |= {f"text→image R@{k}": torch.clamp(k / scenes_true, max=1).mean().item() for k in KS}
    chance = {f"image→text R@{k}": k / (2 * n) for k in KS} | {f"text→image R@{k}": k / n for k in KS}
    return oracle, chance, scenes_true


def recall_table(retrieved: pd.DataFrame, oracle: dict, chance: dict) -> pd.DataFrame:
    """One row per measure: mean ± std over seeds of each variant and of the paired difference, then the oracle's and
    chance's value (binding: 1 and 0.5)."""
    per_seed = retrieved.set_index(["seed", "variant"])
    table = per_seed.groupby(level="variant").agg(mean_std_text).T[list(VARIANTS)]
    table[DELTA] = pd.DataFrame({column: difference(retrieved, column, "FPSA", "vanilla")
                                 for column in per_seed.columns}).agg(mean_std_text)
    binding_rows = [row for row in table.index if row.startswith("binding")]
    for name, values, binding in (("oracle (exact truth, random ties)", oracle, 1.0), ("chance", chance, 0.5)):
        values = values | {"mean recall": sum(values.values()) / len(values)} | dict.fromkeys(binding_rows, binding)
        table[name] = [f"{values[row]:.3f}" if row in values else "" for row in table.index]
    return table


def unconverged_share(answered: dict, models: dict, retrieval_converged: dict, seed: int) -> float:
    """FPSA's (layer, example) solves stopped at the cap for one seed, pooled over both VQA sets and the two
    retrieval towers."""
    stopped = total = 0
    for task in VQA_TASKS:
        frame, layers = answered[task, seed, "FPSA"], models[task, seed, "FPSA"].config.layers
        stopped, total = stopped + frame.unconverged.sum() * layers, total + len(frame) * layers
    converged = retrieval_converged[seed]
    return float((stopped + (~converged).sum().item()) / (total + converged.numel()))


# --- competence curves: what budget would pass the gates ----------------------------------------------------------

GATE_OF = {"easy-VQA": "vqa_learned", "Sort-of-CLEVR": "vqa_learned", "retrieval": "retrieval_learned"}
"""The competence gate of S5 each task's vanilla model must pass (vqa_learned: both VQA sets)."""
CURVE_SCORE = "gate quantity"


def competence_gate(task: str) -> Gate:
    return gate_of("S5", GATE_OF[task])


def validation_score(data: Data, task: str, device: torch.device = torch.device("cpu")) -> Callable[[torch.nn.Module], dict]:
    """The competence curve's score of `task` on its validation split, the quantity its gate reads on the test split:
    for a VQA set, the accuracy per question type and its lowest margin over the question-only baseline on the same
    questions; for retrieval, the six recalls and their mean."""
    if task in data.vqa:
        question_only = question_only_accuracy(data, "validation")[task]

        def score(model: torch.nn.Module) -> dict:
            accuracy = answer_all(model, data, task, device, split="validation").groupby("kind").correct.mean()
            return ({f"accuracy: {kind}": value for kind, value in accuracy.items()}
                    | {CURVE_SCORE: min(value - question_only[kind] for kind, value in accuracy.items())})
        return score
    inputs = retrieval_inputs(data, "validation")

    def score(model: torch.nn.Module) -> dict:
        measures, _ = retrieve(model, inputs, device)
        recalls = [measures[name] for name in recall_names(measures)]
        return {name: measures[name] for name in recall_names(measures)} | {CURVE_SCORE: sum(recalls) / len(recalls)}
    return score


def competence_curve(settings: VisionLanguageSettings, data: Data, task: str, seed: int,
                     device: torch.device = torch.device("cpu"), checkpoint: Path | None = None) -> TrainResult:
    """One more vanilla run of (`task`, `seed`): the paired runs' recipe and batches for the task's `curve_steps`,
    scored on the validation split at every tenth (`validation_score`); its wall seconds, evaluations included, what
    such a step costs."""
    _, result = fit(settings, data, task, seed, "vanilla", device, checkpoint, steps=settings.curve_steps[task],
                    records=10, evaluate=validation_score(data, task, device))
    return result


def competence_budget(task: str, seed: int, curve: TrainResult, steps: int) -> Projection:
    """The steps at which `task`'s competence curve projects to its gate's threshold (`competence_gate`;
    `repro.experiments.fine_tuning.competence_budget`)."""
    gate = competence_gate(task)
    return budget_from_curve(f"{task} vanilla validation {gate.key} quantity", CURVE_SCORE, gate, seed, curve, steps)


def competence_figure(curves: pd.DataFrame):
    """Per task, the gate's quantity on the validation split against the step of the competence curve, the gate's
    threshold dashed."""
    tasks = list(dict.fromkeys(curves.task))
    fig, axes = plots.panels(len(tasks), sharey=False)
    for ax, task in zip(axes, tasks):
        curve, gate = curves[curves.task == task], competence_gate(task)
        ax.plot(curve.step, curve[CURVE_SCORE], marker="o", label="vanilla (validation)")
        ax.axhline(gate.threshold, color="grey", ls="--", lw=0.8, label=f"gate {gate.key} {gate.op} {gate.threshold:g}")
        ax.set(xlabel="training step", title=task, ylabel="lowest accuracy margin over question-only"
               if task in VQA_TASKS else "mean recall")
        ax.legend(fontsize=8)
    return plots.finish(fig, axes)
