import pytest
import torch

from repro.data.prefix_sums import VOCAB, generate
from repro.data.sudoku import CELL_BOX, CELL_COLUMN, CELL_ROW
from repro.losses import progressive_loss, token_loss
from repro.models.looped import CONFIGURATIONS, RECALLS, LoopedConfig, LoopedTransformer, configuration_name
from repro.seeding import rng, torch_seed


def looped(**overrides) -> LoopedTransformer:
    config = dict(vocab=VOCAB, outputs=2, iterations=4, width=16, heads=2, mlp_hidden=32) | overrides
    with torch_seed(0):
        model = LoopedTransformer(LoopedConfig(**config))
    # Move the recall map and the norms away from their initial values, so a test cannot pass by accident.
    with torch.no_grad(), torch_seed(1):
        for parameter in model.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    return model


def capture_inputs(module: torch.nn.Module, store: list):
    return module.register_forward_hook(lambda _module, inputs, _output: store.append(inputs[0].detach()))


@pytest.mark.parametrize("form", ["add", "concat"])
def test_standard_recall_injects_at_the_block_input(form):
    model = looped(recall="standard", recall_form=form, outer_norm="none")
    z, e = torch.randn(2, 5, 16), torch.randn(2, 5, 16)
    seen = []
    handle = capture_inputs(model.blocks[0].attention_norm, seen)
    output = model.step(z, e)
    handle.remove()
    injected = model.recall(z, e)
    assert torch.allclose(seen[0], injected)
    assert torch.allclose(output, model.blocks[0](injected), atol=1e-6)


def test_internal_recall_injects_between_attention_and_mlp():
    model = looped(recall="internal", outer_norm="none")
    block = model.blocks[0]
    z, e = torch.randn(2, 5, 16), torch.randn(2, 5, 16)
    attention_inputs, mlp_inputs = [], []
    handles = [capture_inputs(block.attention_norm, attention_inputs), capture_inputs(block.mlp_norm, mlp_inputs)]
    output = model.step(z, e)
    for handle in handles:
        handle.remove()
    h = z + block.attention(block.attention_norm(z)) + model.recall.project(e)
    assert torch.allclose(attention_inputs[0], z)
    assert torch.allclose(mlp_inputs[0], h, atol=1e-6)
    assert torch.allclose(output, h + block.mlp(block.mlp_norm(h)), atol=1e-6)


def test_without_recall_the_input_only_sets_the_initial_state():
    model = looped(recall="none", outer_norm="none")
    z = torch.randn(2, 5, 16)
    assert model.recall is None
    assert torch.allclose(model.step(z, torch.randn(2, 5, 16)), model.step(z, torch.randn(2, 5, 16)))
    assert torch.allclose(model.step(z, None), model.blocks[0](z), atol=1e-6)


@pytest.mark.parametrize("norm, module", [("layernorm", torch.nn.LayerNorm), ("rmsnorm", torch.nn.RMSNorm)])
def test_outer_norm_is_applied_once_per_iteration_to_the_state(norm, module):
    model = looped(outer_norm=norm)
    assert isinstance(model.outer_norm, module)
    calls = []
    model.outer_norm.register_forward_hook(lambda *_: calls.append(1))
    tokens, _ = generate(3, 8, rng("tokens"))
    model(tokens, iterations=7)
    assert len(calls) == 7
    z, e = torch.randn(2, 5, 16), torch.randn(2, 5, 16)
    block = model.blocks[0]
    u = model.recall(z, e)
    h = u + block.attention(block.attention_norm(u))
    assert torch.allclose(model.step(z, e), model.outer_norm(h + block.mlp(block.mlp_norm(h))), atol=1e-6)


def test_readout_at_every_iteration_and_residual_trace():
    model = looped()
    tokens, _ = generate(3, 8, rng("tokens"))
    logits, aux = model(tokens, iterations=6)
    assert logits.shape == (3, 9, 2) and aux["residuals"].shape == (6, 3)
    e = model.embed(tokens)
    z = model.iterate(model.initial_state(e), e, 0, 6)
    assert torch.allclose(logits, model.readout(z), atol=1e-6)


def test_the_same_weights_run_on_longer_sequences_and_the_clipped_bias_sees_only_clipped_offsets():
    model = looped(max_offset=3, far_offsets="clipped")
    longer, _ = generate(2, 64, rng("long"))
    assert model(longer, iterations=3)[0].shape == (2, 65, 2)
    bias = model.blocks[0].attention.position_bias
    table = bias.table
    short, long = bias(6), bias(40)
    assert torch.equal(short, long[:, 10:16, 10:16])
    assert torch.equal(long[:, 30, 0], table[:, 0]) and torch.equal(long[:, 0, 30], table[:, 6])
    assert torch.equal(long[:, 20, 19], table[:, 2]) and torch.equal(long[:, 20, 21], table[:, 4])


def test_by_default_the_bias_keeps_falling_beyond_the_table_at_each_heads_alibi_slope():
    model = looped(max_offset=3)
    bias = model.blocks[0].attention.position_bias
    long = bias(40)
    slopes = torch.tensor([1.0, 0.5])   # 2^-h for the two heads
    for query, key in ((30, 0), (0, 30), (20, 16), (5, 39)):
        edge = bias.table[:, 0 if key < query else 6]
        assert torch.allclose(long[:, query, key], edge - slopes * (abs(key - query) - 3))
    assert torch.equal(long[:, 20, 19], bias.table[:, 2]) and torch.equal(bias(6), long[:, 10:16, 10:16])
    assert (long[:, 39, :36].diff(dim=-1) > 0).all()   # no two far keys share a score


def test_internal_branch_recall_is_one_concatenation_map_into_each_branch_with_an_outer_norm_after_each_update():
    model = looped(recall="internal-branch", recall_form="concat")
    tokens, _ = generate(2, 7, rng("tokens"))
    e = model.embed(tokens)
    z = torch.randn_like(e)
    block, W = model.blocks[0], model.recall.project.weight
    r = block.attention_norm(torch.cat((z, e), dim=-1) @ W.T)
    h = model.attention_outer_norm(z + block.attention(r))
    r = block.mlp_norm(torch.cat((h, e), dim=-1) @ W.T)
    assert torch.allclose(model.step(z, e), model.outer_norm(h + block.mlp(r)), atol=1e-5)
    assert model.recall.project.bias is None
    with pytest.raises(ValueError, match="needs recall_form 'concat'"):
        looped(recall="internal-branch")


def test_the_loop_stops_computing_once_the_state_is_exactly_a_fixed_point_and_yields_the_same_states():
    model = looped()
    tokens, _ = generate(2, 7, rng("tokens"))
    calls = []
    original = model.step
    # A step that lands on a fixed point after its third call: every later call returns its input unchanged.
    def step(z, e, iteration=0):
        calls.append(iteration)
        return original(z, e, iteration) if iteration < 3 else z
    model.step = step
    states = list(model.states(tokens, 10))
    assert calls == [0, 1, 2, 3] and len(states) == 10
    assert all(torch.equal(z, states[3][0]) for z, _ in states[3:]) and all((r == 0).all() for _, r in states[3:])


def test_untied_model_uses_one_block_per_iteration():
    model = looped(untied=True, recall="none", outer_norm="none")
    assert len(model.blocks) == 4
    z = torch.randn(2, 5, 16)
    assert torch.allclose(model.step(z, None, 2), model.blocks[2](z), atol=1e-6)
    with pytest.raises(ValueError, match="untied model has 4 layers"):
        model.step(z, None, 4)


def test_bad_options_name_the_valid_ones():
    with pytest.raises(ValueError, match="internal"):
        looped(recall="inner")
    with pytest.raises(ValueError, match="never sees the input"):
        looped(recall="none", initial_state="zeros")


def test_progressive_loss_sends_gradient_only_through_the_last_k_iterations():
    model = looped(iterations=6)
    tokens, targets = generate(4, 8, rng("batch"))
    grad_modes = []
    original_step = model.step
    model.step = lambda z, e, iteration=0: grad_modes.append(torch.is_grad_enabled()) or original_step(z, e, iteration)
    with torch_seed(7):
        progressive_loss(6, alpha=1.0)(model, (tokens, targets)).backward()
    gradients = [p.grad.clone() for p in model.parameters()]
    with torch_seed(7):
        n = int(torch.randint(0, 6, ()))
        k = int(torch.randint(1, 6 - n + 1, ()))
    assert grad_modes == [False] * n + [True] * k

    model.zero_grad()
    e = model.embed(tokens)
    z = model.initial_state(e)
    with torch.no_grad():
        z = model.iterate(z, e, 0, n) if n else z
    state = z.detach() if n else z
    token_loss(model.readout(model.iterate(state, e, n, k)), targets).backward()
    for expected, got in zip((p.grad for p in model.parameters()), gradients):
        assert torch.allclose(expected, got, atol=1e-6)


def test_progressive_loss_mixes_in_the_full_unroll_with_weight_one_minus_alpha():
    model = looped(iterations=5)
    tokens, targets = generate(4, 8, rng("batch"))
    with torch_seed(3):
        mixed = progressive_loss(5, alpha=0.25)(model, (tokens, targets))
    with torch_seed(3):
        progressive = progressive_loss(5, alpha=1.0)(model, (tokens, targets))
    full = token_loss(model(tokens, iterations=5)[0], targets)
    assert torch.allclose(mixed, 0.75 * full + 0.25 * progressive, atol=1e-6)


def test_the_study_compares_six_named_configurations():
    assert list(CONFIGURATIONS) == [configuration_name(r, n) for r in RECALLS[:3] for n in ("none", "layernorm")]
    assert RECALLS[3] == "internal-branch"
    assert CONFIGURATIONS["recall internal, outer norm on"] == dict(recall="internal", outer_norm="layernorm")


def test_structure_embedding_adds_one_learned_vector_per_label_of_each_grouping():
    rows, columns = (0, 0, 1, 1), (0, 1, 0, 1)
    model = looped(structure=(rows, columns), max_offset=0)
    assert model.blocks[0].attention.position_bias is None
    tokens = torch.tensor([[1, 0, 2, 1]])
    table = model.structure_embedding.weight
    # Grouping 2's labels come after grouping 1's two in the one table.
    expected = model.embedding(tokens) + table[[0, 0, 1, 1]] + table[[2, 3, 2, 3]]
    assert torch.allclose(model.embed(tokens), expected)
    # The same token at another position of the same row gets another input embedding; recall re-injects it.
    e = model.embed(torch.tensor([[1, 1, 1, 1]]))
    assert not torch.allclose(e[0, 0], e[0, 1]) and not torch.allclose(e[0, 0], e[0, 2])
    with pytest.raises(ValueError, match="structure labels 4 positions; got inputs of 5"):
        model.embed(torch.zeros(1, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="same positions"):
        looped(structure=((0, 1), (0, 1, 2)))
    with pytest.raises(ValueError, match="max_offset must be >= 0"):
        looped(max_offset=-1)
    with pytest.raises(ValueError, match="structure_bias needs a structure and max_offset = 0"):
        looped(structure=(rows, columns), structure_bias=True)


def test_a_sudoku_model_sees_row_column_and_box_of_its_81_cells():
    structure = (CELL_ROW.tolist(), CELL_COLUMN.tolist(), CELL_BOX.tolist())
    model = looped(vocab=10, outputs=9, structure=structure, max_offset=0, structure_bias=True, recall="internal")
    assert model.structure_embedding.weight.shape == (27, model.config.width)
    bias = model.blocks[0].attention.position_bias(81)
    weight = model.blocks[0].attention.position_bias.weight
    # Cell 0 and cell 1 share row and box; cell 0 and cell 9 column and box; cell 0 and cell 80 nothing.
    assert torch.allclose(bias[:, 0, 1], weight[:, 0] + weight[:, 2]) and torch.allclose(bias[:, 0, 9], weight[:, 1] + weight[:, 2])
    assert (bias[:, 0, 80] == 0).all()
    logits, aux = model(torch.randint(0, 10, (3, 81), generator=rng("boards")), iterations=3)
    assert logits.shape == (3, 81, 9) and aux["residuals"].shape == (3, 3)
