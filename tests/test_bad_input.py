"""Every bad input a user can give the study, in one table, with the error it gets.

Each row: what is wrong, the call that tries it (given `files`, which writes {path under REPRO_DATA_DIR: text} into
a stand-in data directory whose manifest lists them, so the loader's own checks are what is tried), the exception
type and a fragment its message must hold: the field, file and line, or built length, and what is valid."""

import json

import pytest
import torch

from repro.data import glue, squad
from repro.models.adatape import AdaTapeEncoderConfig, AdaTapeParity, AdaTapeParityConfig
from repro.models.looped import LoopedConfig, LoopedTransformer
from repro.models.self_transformer import FixedPointAttentionConfig
from repro.models.transformer import TransformerClassifier, TransformerConfig
from repro.models.vit import ViT, ViTConfig
from repro.train import TrainConfig

SQUAD = "squad/v1.1/dev-v1.1.json"


def squad_document(*questions: dict) -> str:
    return json.dumps({"version": "1.1", "data": [{"title": "Cats", "paragraphs": [
        {"context": "The cat sat on the mat.", "qas": list(questions)}]}]}, indent=1)


QUESTION = {"id": "q1", "question": "Where did the cat sit?", "answers": [{"text": "the mat", "answer_start": 15}]}


def load_squad(files, text: str):
    files({SQUAD: text})
    return squad.load_dev()


def load_glue(files, name: str, text: str):
    files({f"glue/{name}/train.tsv": text})
    return glue.load(name, "train")


def run(model, inputs):
    with torch.no_grad():
        return model(inputs)


BAD_INPUTS = [
    # Training settings: every field, the field and its valid range named.
    ("evaluation cadence below zero", lambda files: TrainConfig(steps=10, eval_every=-1),
     ValueError, "TrainConfig.eval_every must be >= 0, got -1"),
    ("clipping norm of zero", lambda files: TrainConfig(steps=10, clip_norm=0),
     ValueError, "TrainConfig.clip_norm must be in (0, inf], got 0"),
    ("a fractional step count", lambda files: TrainConfig(steps=2.5),
     ValueError, "TrainConfig.steps must be an integer, got 2.5 (float)"),
    ("a step count given as True", lambda files: TrainConfig(steps=True),
     ValueError, "TrainConfig.steps must be an integer, got True (bool)"),
    ("zero learning rate", lambda files: TrainConfig(steps=10, lr=0.0),
     ValueError, "TrainConfig.lr must be > 0, got 0.0"),
    ("NaN learning rate", lambda files: TrainConfig(steps=10, lr=float("nan")),
     ValueError, "TrainConfig.lr must be > 0, got nan"),
    ("negative weight decay", lambda files: TrainConfig(steps=10, weight_decay=-0.1),
     ValueError, "TrainConfig.weight_decay must be >= 0, got -0.1"),
    ("warm-up longer than the run", lambda files: TrainConfig(steps=10, warmup_steps=11),
     ValueError, "TrainConfig.warmup_steps must be in [0, steps] (steps = 10), got 11"),
    ("learning-rate floor above 1", lambda files: TrainConfig(steps=10, min_lr_ratio=1.5),
     ValueError, "TrainConfig.min_lr_ratio must be in [0, 1], got 1.5"),
    ("negative checkpoint cadence", lambda files: TrainConfig(steps=10, checkpoint_every=-5),
     ValueError, "TrainConfig.checkpoint_every must be >= 0, got -5"),
    ("a switch given as a string", lambda files: TrainConfig(steps=10, amp="yes"),
     ValueError, "TrainConfig.amp must be True or False, got 'yes' (str)"),
    ("a fractional seed", lambda files: TrainConfig(steps=10, seed=1.5),
     ValueError, "TrainConfig.seed must be an integer, got 1.5 (float)"),
    ("a misspelled training option", lambda files: TrainConfig.from_dict({"steps": 10, "warmup": 2}),
     ValueError, "unknown key(s) ['warmup']; valid keys: ['steps', 'lr'"),
    # Model settings, through the same mechanism.
    ("a looped model with no iterations", lambda files: LoopedConfig(vocab=3, outputs=2, iterations=0),
     ValueError, "LoopedConfig.iterations must be >= 1, got 0"),
    ("a structure of words, not position labels",
     lambda files: LoopedConfig(vocab=3, outputs=2, iterations=2, structure=("row", "col")),
     ValueError, "LoopedConfig.structure must be a list or tuple tuple[tuple[int, ...], ...], got ('row', 'col')"),
    ("dropout of 1", lambda files: TransformerConfig(vocab=3, max_len=8, classes=2, dropout=1.0),
     ValueError, "TransformerConfig.dropout must be in [0, 1), got 1.0"),
    ("a parity model of length 0", lambda files: AdaTapeParityConfig(length=0),
     ValueError, "AdaTapeParityConfig.length must be >= 1, got 0"),
    ("a fractional tape size", lambda files: AdaTapeEncoderConfig.from_dict({"max_tape": 2.5}),
     ValueError, "AdaTapeEncoderConfig.max_tape must be an integer, got 2.5 (float)"),
    ("fixed-point damping of 0", lambda files: FixedPointAttentionConfig(damping=0.0),
     ValueError, "FixedPointAttentionConfig.damping must be in (0, 1], got 0.0"),
    ("an adjoint memory of 1", lambda files: FixedPointAttentionConfig(anderson_memory=1),
     ValueError, "FixedPointAttentionConfig.anderson_memory must be >= 2, got 1"),
    ("a ViT with no heads", lambda files: ViTConfig(heads=0),
     ValueError, "ViTConfig.heads must be >= 1, got 0"),
    # Data files: the file, the line or place, and what was expected.
    ("a SQuAD file cut short", lambda files: load_squad(files, squad_document(QUESTION)[:-40]),
     ValueError, "dev-v1.1.json is not valid JSON: Expecting ',' delimiter at line 18"),
    ("a SQuAD question without answers",
     lambda files: load_squad(files, squad_document(QUESTION, QUESTION | {"id": "q2", "answers": []})),
     ValueError, "dev-v1.1.json, data[0].paragraphs[0].qas[1]) has no answers; every SQuAD v1.1 question has at"),
    ("a SQuAD question with no answers key",
     lambda files: load_squad(files, squad_document({"id": "q1", "question": "Where?"})),
     ValueError, "dev-v1.1.json: data[0].paragraphs[0].qas[0] (question 'q1') has no 'answers' (expected a list)"),
    ("a SQuAD answer start given as text",
     lambda files: load_squad(files, squad_document(QUESTION | {"answers": [{"text": "the mat",
                                                                              "answer_start": "15"}]})),
     ValueError, "dev-v1.1.json: data[0].paragraphs[0].qas[0].answers[0].answer_start must be a whole number, got"),
    ("a SQuAD answer that is not where it says",
     lambda files: load_squad(files, squad_document(QUESTION | {"answers": [{"text": "the mat", "answer_start": 3}]})),
     ValueError, "qas[0]): answer 'the mat' is not at character 3 of its context"),
    ("a SQuAD document of another layout", lambda files: load_squad(files, json.dumps([QUESTION])),
     ValueError, "dev-v1.1.json: the document must be a JSON object, got list"),
    ("an SST-2 file cut mid-line", lambda files: load_glue(files, "SST-2", "sentence\tlabel\na fine film\t1\na dull"),
     ValueError, "SST-2/train.tsv line 3: 1 tab-separated fields, expected 2 (sentence, label); the row is cut short"),
    ("an RTE row with a stray tab",
     lambda files: load_glue(files, "RTE", "index\tsentence1\tsentence2\tlabel\n0\tA man.\tA\tman.\tentailment\n"),
     ValueError, "RTE/train.tsv line 2: 5 tab-separated fields, expected 4"),
    ("an SST-2 file cut after a tab", lambda files: load_glue(files, "SST-2", "sentence\tlabel\na fine film\t1\na dull\t"),
     ValueError, "SST-2/train.tsv line 3: row 1 has label ''; valid labels: ['0', '1']"),
    ("an empty CoLA file", lambda files: load_glue(files, "CoLA", ""),
     ValueError, "CoLA/train.tsv has no rows"),
    # Models at a sequence length or size they were not built for: both named.
    ("AdaTape parity at another length",
     lambda files: run(AdaTapeParity(AdaTapeParityConfig(length=8, encoder={"width": 16, "heads": 2, "layers": 2,
                                                                              "mlp_hidden": 16, "max_tape": 4})),
                       torch.zeros(2, 12, dtype=torch.long)),
     ValueError, "built for sequences of length 8 (its input token reads the whole one-hot sequence), got length 12"),
    ("a transformer past its positions",
     lambda files: run(TransformerClassifier(TransformerConfig(vocab=3, max_len=8, classes=2, width=16, heads=2,
                                                               layers=1, mlp_hidden=16)),
                       torch.zeros(2, 9, dtype=torch.long)),
     ValueError, "sequence of 9 tokens exceeds max_len 8"),
    ("a structured looped model at another length",
     lambda files: run(LoopedTransformer(LoopedConfig(vocab=3, outputs=2, iterations=1, width=16, heads=2,
                                                      mlp_hidden=16, max_offset=0, structure=((0, 0, 1, 1),))),
                       torch.zeros(2, 5, dtype=torch.long)),
     ValueError, "this model's structure labels 4 positions; got inputs of 5"),
    ("a ViT at another image size",
     lambda files: run(ViT(ViTConfig(width=16, heads=2, layers=1, mlp_hidden=16)), torch.zeros(1, 3, 28, 28)),
     ValueError, "expected images of shape (batch, 3, 32, 32), got (1, 3, 28, 28)"),
]


@pytest.mark.parametrize("description, call, error, fragment", BAD_INPUTS, ids=[row[0] for row in BAD_INPUTS])
def test_bad_input_gets_a_clear_error(shared_data, description, call, error, fragment):
    with pytest.raises(error) as raised:
        call(shared_data)
    assert fragment in str(raised.value)
