
import numpy as np
import pandas as pd
import pytest
import torch

from repro.data import glue


# Rows and label counts of the shared GLUE files (shared/data/MANIFEST.md).
SIZES = {("SST-2", "train"): 67349, ("SST-2", "dev"): 872, ("CoLA", "train"): 8551, ("CoLA", "dev"): 1043,
         ("MRPC", "train"): 3668, ("MRPC", "dev"): 408, ("RTE", "train"): 2490, ("RTE", "dev"): 277,
         ("STS-B", "train"): 5749, ("STS-B", "dev"): 1500}


@pytest.mark.needs_data
@pytest.mark.parametrize("name", list(glue.TASKS))
def test_every_row_of_the_shared_files_loads(name):
    spec = glue.task(name)
    for split in glue.SPLITS:
        table = glue.load(name, split)
        assert len(table) == SIZES[name, split]
        assert (table["text_a"].str.len() > 0).all()
        assert table["text_b"].isna().all() == (spec.text_b is None)
        if spec.classes:
            assert set(table["label"]) == {0, 1}
        else:
            assert table["label"].between(0, 5).all()
    if name == "MRPC":
        assert table["label"].value_counts().to_dict() == {1: 279, 0: 129}
    if name == "RTE":
        # Bare quote characters stay in the sentence (with quoting on, rows would merge and the count would drop).
        assert table["text_a"].str.contains('"').any() or table["text_b"].str.contains('"').any()
        assert table["label"].value_counts().to_dict() == {0: 146, 1: 131}  # entailment = 0


def test_bad_label_names_the_row_and_the_valid_labels(shared_data):
    shared_data({"glue/RTE/dev.tsv": 'index\tsentence1\tsentence2\tlabel\n0\tA "quoted" man.\tA man.\tentailment\n'
                                     "1\tA dog.\tA cat.\tcontradiction\n"})
    with pytest.raises(ValueError, match=r"row 1 has label 'contradiction'.*'entailment', 'not_entailment'"):
        glue.load("RTE", "dev")


def test_similarity_scores_outside_the_scale_are_rejected(shared_data):
    header = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
    shared_data({"glue/STS-B/dev.tsv": header + "0\tg\tf\ty\t0\tn\tn\tA man.\tA man.\t7.5\n"})
    with pytest.raises(ValueError, match=r"row 0 has similarity score 7.5;.*\[0, 5\]"):
        glue.load("STS-B", "dev")


def test_missing_file_names_the_expected_path_and_the_hub_failure(tmp_path, monkeypatch):
    monkeypatch.setenv("REPRO_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match=r"GLUE CoLA train: expected glue/CoLA/train.tsv.*hub failed"):
        glue.load("CoLA", "train")


def test_unknown_task_and_split_are_rejected():
    with pytest.raises(ValueError, match="unknown GLUE task 'QNLI'"):
        glue.task("QNLI")
    with pytest.raises(ValueError, match="unknown GLUE split 'test'"):
        glue.load("SST-2", "test")


def test_metrics_against_scipy_and_scikit_learn():
    stats = pytest.importorskip("scipy.stats")
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    generator = np.random.default_rng(0)
    labels = generator.integers(0, 2, 200)
    logits = generator.normal(size=(200, 2)) + np.eye(2)[labels] * 0.8
    predictions = logits.argmax(axis=1)
    cola = glue.metrics("CoLA", labels, logits)
    assert cola["mcc"] == pytest.approx(100 * sklearn_metrics.matthews_corrcoef(labels, predictions))
    mrpc = glue.metrics("MRPC", labels, logits)
    assert mrpc["f1"] == pytest.approx(100 * sklearn_metrics.f1_score(labels, predictions))
    assert mrpc["accuracy"] == pytest.approx(100 * np.mean(predictions == labels))
    assert mrpc["score"] == pytest.approx((mrpc["f1"] + mrpc["accuracy"]) / 2)
    scores = np.round(generator.uniform(0, 5, 300), 1)  # rounding makes ties, which Spearman ranks by their average
    predicted = scores + generator.normal(scale=1.0, size=300)
    stsb = glue.metrics("STS-B", scores, predicted[:, None])
    assert stsb["pearson"] == pytest.approx(100 * stats.pearsonr(predicted, scores)[0])
    assert stsb["spearman"] == pytest.approx(100 * stats.spearmanr(predicted, scores)[0])


def test_degenerate_predictions_and_wrong_shapes():
    labels = np.array([0, 1, 1, 0])
    constant = np.tile([[1.0, 0.0]], (4, 1))  # always class 0: an empty confusion-matrix column
    assert glue.metrics("CoLA", labels, constant)["mcc"] == 0.0
    assert glue.metrics("MRPC", labels, constant)["f1"] == 0.0
    with pytest.raises(ValueError, match=r"expected logits of shape \(4, 2\)"):
        glue.metrics("SST-2", labels, np.zeros((4, 3)))


def test_pairs_are_encoded_as_two_segments_and_truncated():
    minilm = pytest.importorskip("repro.models.minilm")
    tokenizer = minilm.tokenizer()
    table = pd.DataFrame({"text_a": ["a cat sat", "word " * 50], "text_b": ["on the mat", "short"],
                          "label": np.array([1, 0])})
    ids, mask, types, labels = glue.encode(table, tokenizer, max_length=16)
    assert ids.shape == mask.shape == types.shape == (2, 16)
    assert torch.equal(labels, torch.tensor([1, 0]))
    first = tokenizer.convert_ids_to_tokens(ids[0][mask[0].bool()].tolist())
    assert first == ["[CLS]", "a", "cat", "sat", "[SEP]", "on", "the", "mat", "[SEP]"]
    assert types[0, :5].eq(0).all() and types[0, 5:9].eq(1).all()
    assert mask[1].all() and tokenizer.convert_ids_to_tokens(int(ids[1, -1])) == "[SEP]"
