import pytest
import torch

from repro.models.adatape import (AdaptiveTapeReader, AdaTapeEncoder, AdaTapeEncoderConfig, AdaTapeParity,
                                  AdaTapeParityConfig, TapeEncoderBlock, TapeReading, run_by_tape_length)
from repro.seeding import torch_seed


def reader(max_tape=10, budget=2.0, width=16):
    with torch_seed(0):
        return AdaptiveTapeReader(width, key_width=4, max_tape=max_tape, budget=budget)


@pytest.mark.parametrize("max_tape,budget", [(10, 2.0), (20, 4.0), (6, 3.0), (4, 1.0)])
def test_reading_halts_within_max_tape_and_respects_budget(max_tape, budget):
    atr = reader(max_tape, budget)
    # Sharp and flat score distributions alike: scaled random queries and banks.
    for scale in (0.1, 1.0, 30.0):
        query, bank = scale * torch.randn(64, 16), scale * torch.randn(64, 40, 16)
        reading = atr(query, bank)
        assert reading.tokens.shape == (64, max_tape, 16)
        assert ((reading.length >= 1) & (reading.length <= max_tape)).all()
        assert torch.equal(reading.mask, torch.arange(max_tape)[None] < reading.length[:, None])
        # Read slots hold merged tokens, unread slots after the whole batch halted are zeros.
        assert (reading.tokens[reading.mask].abs().sum(dim=1) > 0).all()
        # Each read step merges `candidates` entries, so selections count = length * candidates.
        assert torch.equal(reading.selected.sum(dim=1), reading.length.float() * atr.candidates)


def test_reading_stops_at_the_first_step_whose_halting_mass_reaches_the_budget():
    atr = reader()
    query, bank = torch.randn(32, 16), torch.randn(32, 40, 16)
    reading = atr(query, bank)
    # Reference: replay the reading for every sample without halting and find where the summed
    # per-step maximum weight first reaches the budget.
    values = atr.norm(bank)
    keys, q = values[..., :4], atr.norm(query)[:, :4]
    used, mass = torch.zeros(32, 40), torch.zeros(32)
    expected = torch.full((32,), atr.max_tape)
    for step in range(atr.max_tape):
        scores = torch.einsum("bmk,bk->bm", keys, q)
        index = (scores - 1e9 * used).topk(atr.candidates, dim=1).indices
        weights = torch.softmax(scores.gather(1, index) / 2.0, dim=1)
        mass = mass + weights.max(dim=1).values
        expected = torch.where((mass >= atr.budget) & (expected == atr.max_tape), step + 1, expected)
        token = torch.einsum("bk,bkw->bw", weights, values.gather(1, index[..., None].expand(-1, -1, 16)))
        used = used.scatter_add(1, index, torch.ones_like(index, dtype=torch.float))
        q = (q + token[:, :4]) / 2
    assert torch.equal(reading.length, expected)


def test_padded_tape_slots_are_excluded_from_attention_keys():
    config = AdaTapeEncoderConfig(width=16, heads=2, layers=2, mlp_hidden=32, max_tape=10, budget=2.0, insert_after=1)
    with torch_seed(0):
        encoder = AdaTapeEncoder(config).eval()
    x, bank = torch.randn(4, 3, 16), torch.randn(4, 12, 16)
    states, mask, reading = encoder(x, bank)
    assert (reading.length < config.max_tape).any(), "the test needs a sample with padded slots"
    # Perturb the padded slots' input to the post-insertion blocks: valid outputs must not change.
    captured = {}
    block = encoder.blocks[1]
    hook = block.register_forward_pre_hook(lambda module, args: captured.setdefault("input", args))
    encoder(x, bank)
    hook.remove()
    block_input, key_mask = captured["input"]
    perturbed = block_input.clone()
    perturbed[~key_mask] += 100 * torch.randn_like(perturbed[~key_mask])
    assert torch.allclose(block(block_input, key_mask)[key_mask], block(perturbed, key_mask)[key_mask], atol=1e-5)


def reading_of(lengths: list[int], slots: int = 4, width: int = 2) -> TapeReading:
    """A reading whose examples read `lengths` tokens; only the lengths matter to `run_by_tape_length`."""
    length = torch.tensor(lengths)
    mask = torch.arange(slots)[None] < length[:, None]
    return TapeReading(torch.randn(len(lengths), slots, width) * mask[..., None], mask, length,
                       torch.zeros(len(lengths)), torch.zeros(len(lengths), 8))


def test_run_by_tape_length_runs_each_length_once_on_its_examples_and_zero_fills_the_unread_slots():
    reading = reading_of([2, 1, 2, 4, 1])
    calls = []

    def run(rows, length):
        calls.append((rows.tolist(), length))
        return reading.tokens[rows, :length] * 10

    gathered = run_by_tape_length(reading, run, padded_to=4)
    assert calls == [([1, 4], 1), ([0, 2], 2), ([3], 4)]
    assert torch.equal(gathered, reading.tokens * 10), "each example's own tape in its row, zeros past it"
    # Without padded_to every group's result has one shape (a readout per example); the rows keep their order.
    pooled = run_by_tape_length(reading, lambda rows, length: torch.full((len(rows), 3), float(length)))
    assert torch.equal(pooled, reading.length[:, None].float().expand(-1, 3))


def test_the_cropped_encoder_equals_the_padded_one_and_each_example_run_alone():
    config = AdaTapeEncoderConfig(width=16, heads=2, layers=3, mlp_hidden=32, max_tape=10, budget=2.0, insert_after=1)
    with torch_seed(0):
        encoder = AdaTapeEncoder(config).eval()
        # Banks from flat to sharp, so the examples read different numbers of tokens.
        x, bank = torch.randn(8, 3, 16), torch.randn(8, 12, 16) * torch.linspace(0.1, 30, 8)[:, None, None]
    cropped, mask, reading = encoder(x, bank, crop=True)
    assert len(reading.length.unique()) > 2, "the test needs several tape lengths"
    padded, padded_mask, _ = encoder(x, bank)
    assert torch.equal(mask, padded_mask)
    assert torch.allclose(cropped[mask], padded[mask], atol=1e-5) and (cropped[~mask] == 0).all()
    for example in range(len(x)):
        alone, alone_mask, _ = encoder(x[example:example + 1], bank[example:example + 1], crop=True)
        assert torch.equal(alone_mask[0], mask[example])
        assert torch.allclose(alone[0], cropped[example], atol=1e-5)


def test_gradients_reach_the_bank_through_the_merge_weights():
    atr = reader().double()
    query = torch.randn(8, 16, dtype=torch.float64, requires_grad=True)
    bank = torch.randn(8, 40, 16, dtype=torch.float64, requires_grad=True)

    def output(q, b):
        reading = atr(q, b)
        return (reading.tokens * reading.mask[..., None]).sum()

    output(query, bank).backward()
    # The query enters only through the selection scores, so its gradient flows through the merge weights;
    # it matches central finite differences (the top-k selection is locally constant).
    assert query.grad.abs().sum() > 0 and bank.grad.abs().sum() > 0
    direction = torch.randn_like(query)
    with torch.no_grad():
        numeric = (output(query + 1e-6 * direction, bank) - output(query - 1e-6 * direction, bank)) / 2e-6
    assert torch.allclose((query.grad * direction).sum(), numeric, rtol=1e-5, atol=1e-8)
    direction = torch.randn_like(bank)
    with torch.no_grad():
        numeric = (output(query, bank + 1e-6 * direction) - output(query, bank - 1e-6 * direction)) / 2e-6
    assert torch.allclose((bank.grad * direction).sum(), numeric, rtol=1e-5, atol=1e-8)


def test_learnable_bank_gets_gradient_from_the_task_loss():
    config = AdaTapeParityConfig(length=8, bank="learnable", bank_size=12,
                                 encoder=dict(width=16, heads=2, layers=2, mlp_hidden=32, max_tape=10, budget=2.0))
    with torch_seed(0):
        model = AdaTapeParity(config)
    logits, aux = model(torch.randint(0, 3, (16, 8)))
    torch.nn.functional.cross_entropy(logits, torch.randint(0, 2, (16,))).backward()
    assert model.bank.grad.abs().sum() > 0
    assert aux["tape_length"].max() <= 10 and aux["penalty"].shape == (16,)


def test_separate_tape_ffn_routes_only_the_tape_slots():
    with torch_seed(0):
        block = TapeEncoderBlock(width=8, heads=2, mlp_hidden=16, tape_slots=3)
    x = torch.randn(2, 7, 8)
    routed = block.feed_forward(x)
    assert torch.allclose(routed[:, :4], block.mlp(x[:, :4]))
    assert torch.allclose(routed[:, 4:], block.tape_mlp(x[:, 4:]))


def test_bad_tape_settings_are_rejected_with_the_reason():
    with pytest.raises(ValueError, match="whole number"):
        AdaptiveTapeReader(16, 4, max_tape=10, budget=3.0)
    with pytest.raises(ValueError, match="impurity"):
        AdaptiveTapeReader(16, 4, max_tape=10, budget=2.0, impurity="entropy")
    with pytest.raises(ValueError, match="valid keys"):
        AdaTapeParityConfig.from_dict({"length": 8, "bank_sise": 3})
    with pytest.raises(ValueError, match="valid choices"):
        AdaTapeParity(AdaTapeParityConfig(length=8, bank="random"))


def test_a_zeroed_tape_makes_the_logits_independent_of_the_bank_and_gives_it_no_gradient():
    for bank in ("input", "learnable"):
        config = AdaTapeParityConfig(length=8, bank=bank, bank_size=8, zero_tape=True,
                                     encoder=dict(width=16, heads=2, layers=2, mlp_hidden=32, max_tape=10, budget=2.0))
        with torch_seed(0):
            model = AdaTapeParity(config)
        tokens = torch.randint(0, 3, (16, 8))
        logits, _ = model(tokens)
        table = model.element_embedding.weight if bank == "input" else model.bank
        with torch.no_grad():
            table.normal_(std=5.0)  # any other bank content
        again, _ = model(tokens)
        assert torch.equal(logits, again)
        torch.nn.functional.cross_entropy(again, torch.randint(0, 2, (16,))).backward()
        assert table.grad is None or not table.grad.any()
        assert model.input_token.weight.grad.abs().sum() > 0  # the rest of the model still learns
    # Without the flag the same change of bank content changes the logits.
    with torch_seed(0):
        model = AdaTapeParity(AdaTapeParityConfig(length=8, encoder=dict(width=16, heads=2, layers=2, mlp_hidden=32)))
    before, _ = model(tokens)
    with torch.no_grad():
        model.element_embedding.weight.normal_(std=5.0)
    assert not torch.allclose(before, model(tokens)[0])
