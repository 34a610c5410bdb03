"""The two attention paths of `repro.nn.attention` against each other as the sequence grows, on the CPU.

    python benchmarks/attention_paths.py [--lengths 8 16 ...] [--repeats 20] [--batch 32] [--heads 4]

With a bias or a key mask, `repro.nn.attention` takes `plain_attention` (two batched products around a softmax) up to
`PLAIN_ATTENTION_MAX_TOKENS` keys and `scaled_dot_product_attention` beyond. This prints, for the models' head widths
(8 and 16) and the three masked cases the models run (a learned position bias, a key mask, both), the median
forward and forward + backward milliseconds of both paths at every length, then where SDPA starts to win and the
thresholds that follow: per key of `PLAIN_ATTENTION_MAX_TOKENS` (with a bias; with a key mask alone), the longest
measured length at which the plain path wins forward + backward in every case that key covers.

The inputs are laid out as `repro.nn.SelfAttention` makes them (q, k, v views of one fused projection) and the
backward takes the gradients of that projection and of the bias, as training does; one thread, as the cpu profile
runs. A benchmark, never part of the tests.
"""

import argparse

import pandas as pd
import torch

from repro.cost import time_forward
from repro.nn import PLAIN_ATTENTION_MAX_TOKENS, plain_attention, sdpa_attention
from repro.seeding import rng

PATHS = {"plain": plain_attention, "SDPA": sdpa_attention}
CASES = ("bias", "key mask", "bias + key mask")
HEAD_WIDTHS = (8, 16)
LENGTHS = (8, 16, 32, 48, 64, 81, 96, 128, 192, 256, 384, 512)
"""Powers of two and the models' own lengths (sudoku's 81 cells, 8x8 windows and boards)."""
CPU = torch.device("cpu")


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def inputs(case: str, batch: int, heads: int, head_width: int, tokens: int) -> dict:
    """The fused projection (batch, tokens, 3 width), the (1, heads, tokens, tokens) bias and the (batch, tokens) key
    mask (about a tenth of the keys masked, every example keeping some) that `case` uses."""
    generator = rng("attention-paths", case, batch, heads, head_width, tokens)
    width = heads * head_width
    data = {"qkv": torch.randn(batch, tokens, 3 * width, generator=generator).requires_grad_()}
    if "bias" in case:
        data["bias"] = torch.randn(1, heads, tokens, tokens, generator=generator).requires_grad_()
    if "key mask" in case:
        mask = torch.rand(batch, tokens, generator=generator) > 0.1
        mask[:, 0] = True
        data["key_mask"] = mask
    return data


def call(path, data: dict, heads: int, backward: bool):
    """One forward (and backward) of `path` on `data`, the q, k, v views made as `SelfAttention` makes them."""
    qkv = data["qkv"]
    batch, tokens, fused = qkv.shape
    leaves = [t for t in (qkv, data.get("bias")) if t is not None]

    def run():
        q, k, v = qkv.view(batch, tokens, 3, heads, fused // (3 * heads)).permute(2, 0, 3, 1, 4)
        y = path(q, k, v, data.get("bias"), data.get("key_mask"))
        if backward:
            torch.autograd.grad(y, leaves, torch.ones_like(y))
    return run


def sweep(lengths, batch: int, heads: int, repeats: int) -> pd.DataFrame:
    rows = []
    for head_width in HEAD_WIDTHS:
        for case in CASES:
            for tokens in lengths:
                data = inputs(case, batch, heads, head_width, tokens)
                row = {"head width": head_width, "case": case, "tokens": tokens}
                for name, path in PATHS.items():
                    for backward, label in ((False, "fwd"), (True, "fwd+bwd")):
                        latency = time_forward(call(path, data, heads, backward), CPU, repeats, warmup=3)
                        row[f"{name} {label} ms"] = 1e3 * latency.median
                row["SDPA / plain fwd+bwd"] = row["SDPA fwd+bwd ms"] / row["plain fwd+bwd ms"]
                rows.append(row)
    return pd.DataFrame(rows)


# SDPA "wins" a length only when it is this much faster: the two paths tie within a few percent at 8 tokens, where
# one noisy repeat would otherwise decide the whole range.
TIE = 0.05


def crossovers(table: pd.DataFrame, direction: str) -> pd.DataFrame:
    """Per (head width, case), timing `direction` ("fwd" or "fwd+bwd"): the first length at which SDPA is faster by
    more than `TIE`, and the longest length before it, where the plain path wins or ties (NaN: not within the lengths
    measured)."""
    def one(group: pd.DataFrame) -> pd.Series:
        group = group.sort_values("tokens")
        sdpa_wins = group[f"SDPA {direction} ms"] < (1 - TIE) * group[f"plain {direction} ms"]
        first = group.loc[sdpa_wins, "tokens"].min()
        before = group.tokens < first if sdpa_wins.any() else group.tokens > 0
        return pd.Series({"plain wins up to": group.loc[before, "tokens"].max(), "SDPA wins from": first})
    return table.groupby(["head width", "case"], sort=False).apply(one, include_groups=False)


def thresholds(found: pd.DataFrame) -> dict[str, int]:
    """`repro.nn.PLAIN_ATTENTION_MAX_TOKENS` as measured: per key, the longest length at which the plain path wins
    in every case and head width the key covers (0: it never wins)."""
    covers = {"bias": ("bias", "bias + key mask"), "key mask": ("key mask",)}
    wins = found["plain wins up to"].fillna(0)
    return {key: int(wins[wins.index.get_level_values("case").isin(cases)].min()) for key, cases in covers.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", type=positive, nargs="+", default=list(LENGTHS), help="key sequence lengths")
    parser.add_argument("--repeats", type=positive, default=20, help="timed calls per length, path and direction")
    parser.add_argument("--batch", type=positive, default=32)
    parser.add_argument("--heads", type=positive, default=4)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    table = sweep(sorted(set(args.lengths)), args.batch, args.heads, args.repeats)
    print(f"attention paths: batch {args.batch}, {args.heads} heads, {torch.get_num_threads()} CPU thread, "
          f"{args.repeats} repeats, medians in ms (backward: the fused projection's and the bias's gradients)")
    print(table.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    for direction in ("fwd", "fwd+bwd"):
        found = crossovers(table, direction)
        print(f"\ncrossover ({direction}):")
        print(found.to_string(float_format=lambda x: f"{x:.0f}"))
    print(f"\nmeasured thresholds (fwd+bwd): PLAIN_ATTENTION_MAX_TOKENS = {thresholds(crossovers(table, 'fwd+bwd'))}; "
          f"repro.nn has {PLAIN_ATTENTION_MAX_TOKENS}")


if __name__ == "__main__":
    main()
