"""The cost pipeline of notebook 10 with a tiny random BERT: the seeded text sample, the per-(layer, example) steps and
per-batch costs, their summaries and ratios, the length-sweep inputs and slopes, and the training-memory sweep."""

import copy

import pandas as pd
import pytest
import torch
from transformers import BertConfig, BertModel

from repro.experiments import scaling as sc
from repro.experiments.scaling import BASE, DEFAULT, ScalingSettings
from repro.models import minilm
from repro.models.self_transformer import GRADIENTS, fixed_point_layers, swap_bert_attention
from repro.seeding import torch_seed

pytestmark = pytest.mark.usefixtures("one_thread")

DAMPED = "FPSA, damped 0.5, cap 4"
TINY = dict(seeds=[0], sst2=3, stsb=2, squad=1, max_tokens=24, batch=2, damped_cap=4, budget_cap=40, text_repeats=1,
            warmup=0, minilm_lengths=[8, 16], minilm_batch=1, encoder=dict(layers=1, width=16, heads=2, mlp_hidden=32),
            encoder_lengths=[8, 16], encoder_batch=1, sweep_repeats=1, memory_caps=[1, 2], memory_batch=1,
            memory_length=8, neumann_terms=[2])


@pytest.fixture(scope="module")
def settings() -> ScalingSettings:
    return ScalingSettings.of(**TINY)


@pytest.fixture(scope="module")
def tokenizer():
    return minilm.tokenizer()


@pytest.fixture(scope="module")
def bert(tokenizer):
    """A randomly initialised two-layer BERT of MiniLM's vocabulary, in eval mode."""
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=32)
    with torch_seed(0):
        return BertModel(config, add_pooling_layer=False).eval()


@pytest.fixture(scope="module")
def corpora():
    return {"sentences": (["a short one", "a somewhat longer sentence than the first", "mid length text"], None),
            "pairs": (["first half", "another first"], ["second half", "another second half here"])}


@pytest.fixture(scope="module")
def measured(bert, corpora, tokenizer, settings):
    fixed_point = swap_bert_attention(copy.deepcopy(bert), DEFAULT)
    steps, costs = sc.text_cost(bert, fixed_point, corpora, tokenizer, settings)
    return fixed_point, steps, costs


def test_settings_take_one_seed_and_allow_no_warmup(settings):
    assert settings.seed == 0 and settings.warmup == 0 and settings.memory_caps == (1, 2)
    assert list(settings.solvers()) == [BASE, DAMPED, "FPSA, anderson, cap 40"]
    assert (BASE, DAMPED) == ("FPSA, anderson, cap 32", "FPSA, damped 0.5, cap 4")
    with pytest.raises(ValueError, match="budget_cap: it must exceed the pre-registered cap 32, got 32"):
        ScalingSettings.of(**TINY | dict(budget_cap=32))
    with pytest.raises(ValueError, match="one seed"):
        ScalingSettings.of(**TINY | dict(seeds=[0, 1]))
    with pytest.raises(ValueError, match="warmup must lie in"):
        ScalingSettings.of(**TINY | dict(warmup=-1))


def test_lengths_beyond_minilms_positions_are_refused(settings, bert):
    sc.check_positions(settings, bert)
    with pytest.raises(ValueError, match="32 positions"):
        sc.check_positions(ScalingSettings.of(**TINY | dict(memory_length=64)), bert)


def test_the_sample_is_seeded_and_without_replacement():
    items = list(range(20))
    assert sc.pick(items, 5, "sst2", 0) == sc.pick(items, 5, "sst2", 0)
    assert sc.pick(items, 5, "sst2", 0) != sc.pick(items, 5, "stsb", 0)
    assert len(set(sc.pick(items, 20, "sst2", 1))) == 20


def test_encoding_truncates_and_sorts_by_length(tokenizer):
    ids, mask, types = sc.encode(tokenizer, ["one two three four five six", "one"], None, 5)
    assert ids.shape == mask.shape == types.shape == (2, 5)
    assert mask.sum(dim=1).tolist() == [3, 5]  # [CLS] one [SEP] first, the truncated one second


def test_text_cost_records_every_solve_and_every_batch(measured, corpora, settings):
    fixed_point, steps, costs = measured
    examples = sum(len(first) for first, _ in corpora.values())
    assert len(steps) == len(settings.solvers()) * 2 * examples  # solvers x layers x examples
    assert (steps.steps == steps.evaluations - 1).all()
    for solver, config in settings.solvers().items():
        rows = steps[steps.solver == solver]
        assert rows.evaluations.between(1, config.max_iterations).all()
        assert (rows.evaluations[rows["at cap"]] == config.max_iterations).all()  # at the cap unconverged
        assert costs[f"{solver} at cap"].sum() == rows["at cap"].sum()
        assert (costs[f"{solver} solves"] == 2 * costs.examples).all()  # layers x examples
    assert list(costs.corpus) == ["sentences", "sentences", "pairs"] and costs.examples.sum() == examples
    assert {f"{BASE} ms", f"{BASE} GFLOPs", f"{DAMPED} GFLOPs"} <= set(costs.columns)
    assert f"{DAMPED} ms" not in costs  # the comparison solver is counted, not timed
    assert all(layer.config == DEFAULT for layer in fixed_point_layers(fixed_point))


def test_step_summaries_and_cost_ratios_by_hand():
    steps = pd.DataFrame({"solver": ["a"] * 4 + ["b"] * 4, "corpus": ["x", "x", "y", "y"] * 2,
                          "layer": [1, 2, 1, 2] * 2, "tokens": [4, 4, 6, 6] * 2, "steps": [1, 3, 2, 2, 0, 0, 1, 7],
                          "at cap": [False, True, False, False, False, False, False, True]})
    summary, per_layer = sc.steps_tables(steps, ["a", "b"])
    assert summary.loc[("a", "x"), "median_steps"] == 2 and summary.loc[("b", "y"), "at_cap"] == 0.5
    assert summary.loc[("a", "y"), "mean_tokens"] == 6 and summary.loc[("a", "x"), "pairs"] == 2
    assert per_layer.loc[2, "b: median_steps"] == 3.5
    costs = pd.DataFrame({"corpus": ["x", "x", "y"], "vanilla GFLOPs": [1.0, 1.0, 2.0], "vanilla ms": [1.0, 3.0, 2.0],
                          f"{BASE} GFLOPs": [2.0, 1.0, 3.0], f"{BASE} ms": [2.0, 4.0, 2.0],
                          f"{BASE} solves": [4, 4, 2], f"{BASE} at cap": [1, 0, 2]})
    table = sc.text_cost_table(costs, [BASE])
    assert list(table.index) == ["x", "y", "all"]
    assert table.loc["x", f"{BASE} FLOPs ratio"] == 1.5 and table.loc["x", f"{BASE} latency ratio"] == 1.5
    assert table.loc["all", f"{BASE} FLOPs ratio"] == 1.5 and table.loc["all", "vanilla ms"] == 6
    assert table.loc["x", f"{BASE} at cap"] == 1 / 8 and table.loc["all", f"{BASE} at cap"] == 0.3


def test_text_windows_wrap_consecutive_stream_tokens(tokenizer):
    stream = sc.squad_stream(tokenizer, ["alpha beta gamma", "delta epsilon zeta eta theta"], 8)
    assert len(stream) == 8
    inputs = sc.text_windows(stream, tokenizer, 6, 2)
    ids = inputs["input_ids"]
    assert ids.shape == (2, 6) and (ids[:, 0] == tokenizer.cls_token_id).all() and (ids[:, -1] == tokenizer.sep_token_id).all()
    assert torch.equal(ids[:, 1:-1].flatten(), stream) and inputs["attention_mask"].all()
    with pytest.raises(ValueError, match="stream holds 8"):
        sc.text_windows(stream, tokenizer, 10, 2)
    with pytest.raises(ValueError, match="fewer than the 100"):
        sc.squad_stream(tokenizer, ["alpha"], 100)


def test_random_tokens_are_a_function_of_length_and_seed():
    first = sc.random_tokens(50, 2, 8, 0)["tokens"]
    assert first.shape == (2, 8) and int(first.max()) < 50
    assert torch.equal(first, sc.random_tokens(50, 2, 8, 0)["tokens"])
    assert not torch.equal(first, sc.random_tokens(50, 2, 8, 1)["tokens"])


def test_slopes_recover_exact_power_laws():
    lengths = [8, 16, 32, 64]
    sweeps = pd.DataFrame({"setup": "s", "length": lengths, "vanilla ms": [n ** 1.0 for n in lengths],
                           "FPSA ms": [2 * n ** 0.5 for n in lengths], "time ratio": [2 / n ** 0.5 for n in lengths]})
    fits, slopes = sc.slopes_table(sweeps)
    assert fits["s"]["FPSA"].slope == pytest.approx(0.5) and fits["s"]["FPSA"].prefactor == pytest.approx(2)
    row = slopes.loc["s"]
    assert row.difference == pytest.approx(-0.5) and row["difference SE"] == pytest.approx(0, abs=1e-9)
    assert row.lengths == "8-64" and bool(row["FPSA slope + 2 SE < 1"])
    assert row["time ratio, longest"] == pytest.approx(0.25)


def test_the_memory_sweep_keeps_neumann_memory_flat_and_unrolled_growing(bert, tokenizer, settings):
    inputs = sc.text_windows(torch.arange(1000, 1012), tokenizer, 8, 2)
    memory = sc.memory_sweep(bert, inputs, (1, 2, 4), settings.seed)
    assert len(memory) == 1 + len(GRADIENTS) * 3 and memory.iloc[0].gradient == "vanilla attention"
    assert set(memory.outcome) <= {"ok", "adjoint missed its tolerance"}
    growth = sc.memory_growth(memory)
    assert list(growth["growth"].index) == [2, 4] and growth["growth"].abs().max() < 0.05
    assert growth["unrolled growth"] > 0.5
    assert not bert.training  # measured on copies
    cosines = sc.gradient_cosines(bert, inputs, 2, neumann_terms=(1, sc.DEFAULT.neumann_steps, 8))
    assert list(cosines.index) == [*GRADIENTS, "neumann, 1 terms", "neumann, 8 terms"]  # the default's row once
    assert (cosines["reference cap"] == 8).all()
    assert cosines.cosine.between(-1, 1).all() and cosines.at["neumann", "cosine"] > 0.5
    assert cosines["neumann terms"].tolist()[1:2] + cosines["neumann terms"].tolist()[4:] == [4, 1, 8]
    assert (cosines[["adjoint converged", "adjoint stalled", "adjoint diverged"]].sum(axis=1)
            == [0, 4, 4, 0, 4, 4]).all()  # layers x examples for the adjoint modes, none for phantom and unrolled


@pytest.mark.parametrize("by_terms, expected", [
    ({1: 0.90, 4: 0.94, 8: 0.96, 16: 0.97}, "the gate would pass with 8 Neumann terms (the default has 4; cosine by "
                                            "terms 1: 0.9000, 4: 0.9400, 8: 0.9600, 16: 0.9700)"),
    ({1: 0.90, 4: 0.94, 8: 0.93}, "no Neumann series of 1-8 terms passes the gate (cosine by terms 1: 0.9000, "
                                  "4: 0.9400, 8: 0.9300; best 0.9400 at 4)"),
])
def test_the_neumann_budget_names_the_fewest_passing_terms_or_none(by_terms, expected):
    names = {4: "neumann"} | {k: f"neumann, {k} terms" for k in by_terms if k != 4}
    cosines = pd.DataFrame([{"gradient": names[k], "neumann terms": k, "cosine": c} for k, c in by_terms.items()]
                           + [{"gradient": "implicit", "neumann terms": None, "cosine": 0.999}]).set_index("gradient")
    assert sc.neumann_budget(cosines, 0.95) == expected


def test_an_implicit_step_whose_adjoint_diverges_is_a_row_not_a_crash(bert, tokenizer, settings, monkeypatch):
    inputs = sc.text_windows(torch.arange(1000, 1012), tokenizer, 8, 2)

    def diverging(*args, **kwargs):
        raise sc.AdjointDivergence("encoder.layer.0.attention: the implicit adjoint solve diverged")
    monkeypatch.setattr(sc, "training_memory", diverging)
    row = sc.measure(bert, inputs, "implicit", 2, settings.seed)
    assert row["outcome"] == "adjoint missed its tolerance" and "encoder.layer.0" in row["detail"] and row["saved MiB"] != row["saved MiB"]


def test_memory_growth_by_hand():
    memory = pd.DataFrame({"gradient": ["vanilla attention", "neumann", "neumann", "neumann", "unrolled", "unrolled"],
                           "cap": [1, 1, 2, 4, 1, 4], "saved MiB": [1.0, 2.0, 2.0, 2.2, 2.0, 5.0]})
    growth = sc.memory_growth(memory)
    assert growth["growth"].tolist() == pytest.approx([0.0, 0.1])
    assert growth["neumann spread"] == pytest.approx(0.1) and growth["unrolled growth"] == pytest.approx(1.5)
    assert growth["unrolled MiB"] == (2.0, 5.0)


@pytest.mark.needs_data
def test_the_text_sample_draws_each_corpus_and_keeps_every_context_once(settings):
    corpora, contexts = sc.load_text(settings)
    assert [len(first) for first, _ in corpora.values()] == [3, 2, 1]
    first, second = corpora["STS-B pairs"]
    assert len(second) == len(first) and corpora["SST-2 sentences"][1] is None
    assert len(contexts) == len(set(contexts)) and corpora["SQuAD contexts"][0][0] in contexts


def test_memory_evidence_quotes_the_spread_growth_and_cosines(settings):
    memory = pd.DataFrame({"gradient": ["vanilla attention", "neumann", "neumann", "unrolled", "unrolled", "implicit",
                                        "implicit", "phantom"],
                           "cap": [1, 1, 4, 1, 4, 1, 4, 4], "saved MiB": [1.0, 2.0, 2.2, 2.0, 5.0, 2.1, float("nan"), 2.3],
                           "outcome": ["ok"] * 6 + ["adjoint missed its tolerance", "ok"]})
    cosines = pd.DataFrame({"gradient": ["neumann", "implicit"], "neumann terms": [4, None], "cosine": [0.99, 0.3],
                            "norm ratio": [1.0, 3.0], "cap": 4, "reference cap": 16,
                            "reference residual": 1e-7}).set_index("gradient")
    text = sc.memory_evidence(memory, cosines, settings)
    assert "neumann varies by 10.0%" in text and "unrolled grows by 150% (2.0 -> 5.0 MiB)" in text
    assert "implicit 2.1 MiB; phantom 2.3 MiB; vanilla attention 1.0 MiB; implicit: adjoint missed its tolerance at caps [4]" in text
    assert "16 damped evaluations" in text and "neumann 0.9900 (norm 1.00), implicit 0.3000 (norm 3.00)" in text
    assert text.endswith("the gate would pass with 4 Neumann terms (the default has 4; cosine by terms 4: 0.9900)")
