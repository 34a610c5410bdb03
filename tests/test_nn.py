import pytest
import torch

from repro import nn as nn_module
from repro.nn import (PLAIN_ATTENTION_MAX_TOKENS, EncoderBlock, RelativePositionBias, SelfAttention, SharedLabelBias,
                      StructureEmbedding, attention, masked_mean, plain_attention, sdpa_attention)
from repro.seeding import torch_seed


def test_masked_keys_do_not_influence_the_other_tokens():
    with torch_seed(0):
        attention = SelfAttention(16, heads=4)
    x = torch.randn(3, 6, 16)
    mask = torch.tensor([[True] * 6, [True] * 4 + [False] * 2, [True] + [False] * 5])
    changed = x.clone()
    changed[~mask] = torch.randn_like(changed[~mask])
    assert torch.allclose(attention(x, mask)[mask], attention(changed, mask)[mask], atol=1e-6)
    assert not torch.allclose(attention(x)[mask], attention(changed)[mask], atol=1e-6)


def test_attention_matches_the_textbook_formula():
    with torch_seed(0):
        attention = SelfAttention(8, heads=2)
    x = torch.randn(2, 5, 8)
    q, k, v = attention.qkv(x).split(8, dim=-1)
    heads = [torch.softmax(q[..., h * 4:(h + 1) * 4] @ k[..., h * 4:(h + 1) * 4].transpose(1, 2) / 2.0, dim=-1)
             @ v[..., h * 4:(h + 1) * 4] for h in range(2)]
    assert torch.allclose(attention(x), attention.out(torch.cat(heads, dim=-1)), atol=1e-5)


def test_block_is_pre_layer_norm_residual():
    with torch_seed(0):
        block = EncoderBlock(8, heads=2, mlp_hidden=16)
    x = torch.randn(2, 5, 8)
    h = x + block.attention(block.attention_norm(x))
    assert torch.allclose(block(x), h + block.mlp(block.mlp_norm(h)), atol=1e-6)


def test_masked_mean_counts_only_valid_tokens():
    x = torch.tensor([[[1.0], [3.0], [100.0]]])
    assert masked_mean(x, torch.tensor([[True, True, False]])).item() == 2.0


def test_relative_position_bias_enters_the_logits_and_respects_the_key_mask():
    with torch_seed(0):
        attention = SelfAttention(8, heads=2, max_offset=2)
    with torch.no_grad():
        attention.position_bias.table.normal_()
    x = torch.randn(1, 5, 8)
    q, k, v = attention.qkv(x).split(8, dim=-1)
    bias = attention.position_bias(5)
    offsets = torch.arange(5)[None, :] - torch.arange(5)[:, None]
    assert torch.equal(bias[1], attention.position_bias.table[1, offsets.clamp(-2, 2) + 2])
    heads = [torch.softmax(q[..., h * 4:(h + 1) * 4] @ k[..., h * 4:(h + 1) * 4].transpose(1, 2) / 2.0 + bias[h], dim=-1)
             @ v[..., h * 4:(h + 1) * 4] for h in range(2)]
    assert torch.allclose(attention(x), attention.out(torch.cat(heads, dim=-1)), atol=1e-5)
    mask = torch.tensor([[True, True, True, False, False]])
    changed = x.clone()
    changed[0, 3:] = torch.randn(2, 8)
    assert torch.allclose(attention(x, mask)[0, :3], attention(changed, mask)[0, :3], atol=1e-6)


def test_shared_label_bias_adds_a_learned_score_for_each_grouping_two_positions_share():
    # Four cells of a 2x2 grid: grouping 0 is the row, grouping 1 the column.
    bias = SharedLabelBias(heads=2, structure=((0, 0, 1, 1), (0, 1, 0, 1)))
    with torch.no_grad():
        bias.weight.copy_(torch.tensor([[1.0, 10.0], [-2.0, 0.5]]))
    table = bias(4)
    assert table.shape == (2, 4, 4)
    assert table[0, 0, 1] == 1.0 and table[0, 0, 2] == 10.0 and table[0, 0, 3] == 0.0 and table[0, 0, 0] == 11.0
    assert table[1, 3, 1] == 0.5 and table[1, 3, 2] == -2.0
    with torch_seed(0):
        attention = SelfAttention(8, heads=2, position_bias=bias)
    x = torch.randn(1, 4, 8)
    q, k, v = attention.qkv(x).split(8, dim=-1)
    heads = [torch.softmax(q[..., h * 4:(h + 1) * 4] @ k[..., h * 4:(h + 1) * 4].transpose(1, 2) / 2.0 + table[h], dim=-1)
             @ v[..., h * 4:(h + 1) * 4] for h in range(2)]
    assert torch.allclose(attention(x), attention.out(torch.cat(heads, dim=-1)), atol=1e-5)
    with pytest.raises(ValueError, match="labels 4 positions; got 5 tokens"):
        bias(5)
    with pytest.raises(ValueError, match="either max_offset"):
        SelfAttention(8, heads=2, max_offset=2, position_bias=bias)


def test_structure_embedding_sums_one_row_per_grouping_with_each_grouping_in_rows_of_its_own():
    # A 2x3 grid: grouping 0 is the row (labels 0, 1), grouping 1 the column (labels 0, 1, 2).
    rows, columns = (0, 0, 0, 1, 1, 1), (0, 1, 2, 0, 1, 2)
    embedding = StructureEmbedding(width=4, structure=(rows, columns))
    assert embedding.weight.shape == (5, 4)
    with torch.no_grad():
        embedding.weight.copy_(torch.arange(5.0)[:, None] * torch.tensor([1.0, 10.0, 100.0, 1000.0]))
    out = embedding(6)
    assert out.shape == (6, 4)
    # Column c's labels sit past the rows' two: position (row r, column c) gets table rows r and 2 + c.
    assert torch.equal(out[:, 0], torch.tensor([r + 2 + c for r, c in zip(rows, columns)], dtype=torch.float))
    # Positions 0 and 3 differ in their row alone: their sums differ by exactly the two rows' vectors.
    assert not torch.equal(out[0], out[3]) and torch.equal(out[3] - out[0], embedding.weight[1] - embedding.weight[0])
    out.sum().backward()
    assert torch.equal(embedding.weight.grad[:, 0], torch.tensor([3.0, 3.0, 2.0, 2.0, 2.0]))
    assert embedding.state_dict().keys() == {"weight"}, "the labels are rebuilt from the structure, not saved"
    with pytest.raises(ValueError, match="this model's structure labels 6 positions; got inputs of 5"):
        embedding(5)
    with pytest.raises(ValueError, match="at least one grouping"):
        StructureEmbedding(width=4, structure=())


def test_structure_embedding_draws_its_table_as_an_embedding_of_its_size_does():
    with torch_seed(3):
        embedding = StructureEmbedding(width=8, structure=((0, 1, 2), (1, 0, 0)))
    with torch_seed(3):
        reference = torch.nn.Embedding(5, 8)
    assert torch.equal(embedding.weight, reference.weight)


def test_relative_position_bias_clips_by_default_and_falls_linearly_when_asked():
    clipped, linear = RelativePositionBias(2, 2), RelativePositionBias(2, 2, far="linear")
    assert torch.equal(clipped(9)[:, 0, 8], clipped.table[:, 4])   # offset 8 shares the edge entry (offset 2)
    assert torch.allclose(linear(9)[:, 0, 8], linear.table[:, 4] - torch.tensor([1.0, 0.5]) * 6)
    assert torch.equal(clipped(3), linear(3))   # inside the table the two agree
    with pytest.raises(ValueError, match="unknown far 'ramp'"):
        RelativePositionBias(2, 2, far="ramp")


def attention_inputs(dtype=torch.float32, tokens: int = 5):
    """q, k, v (3 examples, 2 heads, head width 4), a (1, heads, tokens, tokens) bias and a key mask whose last
    example has no valid key."""
    with torch_seed(0):
        q, k, v = (torch.randn(3, 2, tokens, 4, dtype=dtype) for _ in range(3))
        bias = torch.randn(1, 2, tokens, tokens, dtype=dtype)
    key_mask = torch.tensor([[True] * tokens, [True, False] * (tokens // 2) + [True] * (tokens % 2), [False] * tokens])
    return q, k, v, bias, key_mask


@pytest.mark.parametrize("masking", ["bias", "key mask", "bias + key mask"])
def test_plain_attention_matches_sdpa_and_a_fully_masked_example_gets_zeros_not_nan(masking):
    q, k, v, bias, key_mask = attention_inputs()
    bias, key_mask = (bias if "bias" in masking else None), (key_mask if "key mask" in masking else None)
    outputs, gradients = [], []
    for path in (plain_attention, sdpa_attention):
        leaves = [t.clone().requires_grad_() for t in (q, k, v) + ((bias,) if bias is not None else ())]
        y = path(*leaves[:3], leaves[3] if bias is not None else None, key_mask)
        outputs.append(y)
        gradients.append(torch.autograd.grad((y * torch.linspace(-1, 1, y.numel()).view_as(y)).sum(), leaves))
    assert torch.allclose(outputs[0], outputs[1], atol=1e-6)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(*gradients))
    assert not any(torch.isnan(g).any() for g in gradients[0])
    if key_mask is not None:   # SDPA's safe softmax: zero output and zero gradient for the example with no valid key
        assert torch.equal(outputs[0][2], torch.zeros_like(outputs[0][2]))
        assert all(torch.equal(g[2], torch.zeros_like(g[2])) for g in gradients[0][:3])


@pytest.mark.parametrize("path", [plain_attention, sdpa_attention])
def test_both_attention_paths_pass_gradcheck_with_a_bias_and_a_key_mask(path):
    q, k, v, bias, key_mask = attention_inputs(torch.float64, tokens=3)
    leaves = tuple(t.requires_grad_() for t in (q, k, v, bias))
    assert torch.autograd.gradcheck(lambda *x: path(*x, key_mask), leaves)
    assert torch.autograd.gradcheck(lambda *x: path(*x), leaves)
    assert torch.autograd.gradcheck(lambda *x: path(*x[:3], None, key_mask), leaves[:3])


def test_attention_takes_the_plain_path_with_a_bias_up_to_the_threshold_and_sdpa_beyond(monkeypatch):
    taken = []
    monkeypatch.setattr(nn_module, "plain_attention", lambda *args: taken.append("plain") or sdpa_attention(*args))
    monkeypatch.setattr(nn_module, "sdpa_attention", lambda *args: taken.append("SDPA") or sdpa_attention(*args))
    monkeypatch.setitem(PLAIN_ATTENTION_MAX_TOKENS, "bias", 5)
    monkeypatch.setitem(PLAIN_ATTENTION_MAX_TOKENS, "key mask", 0)
    for tokens in (5, 6):
        q, k, v, bias, key_mask = attention_inputs(tokens=tokens)
        attention(q, k, v, bias, key_mask)
        attention(q, k, v, None, key_mask)
        attention(q, k, v)
    assert taken == ["plain", "SDPA", "SDPA", "SDPA", "SDPA", "SDPA"]
