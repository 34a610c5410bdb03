"""Fixed-point self-attention (FPSA) against vanilla attention as the sequence grows.

    python benchmarks/fpsa_scaling.py [--device cpu|cuda] [--lengths 64 128 ...] [--repeats 5]

Prints one row per length (vanilla and FPSA forward time, their ratio, FPSA's iterations per
layer and example, the FLOPs ratio), then the log-log slopes of time against length. The
measurements are `repro.cost`'s, the same as notebook 10's; a benchmark, never part of the tests.

`--model encoder` (default) is a randomly initialised MiniLM-shaped encoder with a relative
position bias, so any length runs; `--model minilm` is the pretrained all-MiniLM-L6-v2 (at most
512 tokens). Both read random token ids: the times are the mechanism's, not a trained model's.
"""

import argparse
import copy

import torch

from repro.cost import device_of, fit_power_law, length_sweep, reference_encoder
from repro.models.self_transformer import FixedPointAttentionConfig, swap_bert_attention, swap_self_attention
from repro.seeding import rng

VOCAB = 30522  # MiniLM's WordPiece vocabulary
MINILM_POSITIONS = 512
COLUMNS = ["length", "vanilla ms", "FPSA ms", "time ratio", "mean iterations", "at cap", "FLOPs ratio"]


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def models(name: str, layers: int, config: FixedPointAttentionConfig, seed: int, device: torch.device):
    """(vanilla, FPSA twin, inputs(length, batch)) for `--model`."""
    if name == "minilm":
        from repro.models import minilm
        vanilla = minilm.encoder().eval().to(device)
        fixed_point = swap_bert_attention(copy.deepcopy(vanilla), config)
        return vanilla, fixed_point, lambda ids: {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    # DEVIATION: [self-scaling-random-encoder] beyond 512 positions, a random-init MiniLM-shaped encoder.
    vanilla = reference_encoder(VOCAB, layers=layers, seed=seed).to(device)
    return vanilla, swap_self_attention(copy.deepcopy(vanilla), config), lambda ids: {"tokens": ids}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                        help="cpu or cuda[:index] (default: cuda where available)")
    parser.add_argument("--model", choices=("encoder", "minilm"), default="encoder")
    parser.add_argument("--lengths", type=positive, nargs="+",
                        help="sequence lengths (default: 64 ... 4096 on cuda, 64 ... 1024 on cpu; "
                             "at most 512 for minilm)")
    parser.add_argument("--batch", type=positive, default=1)
    parser.add_argument("--repeats", type=positive, default=5, help="timed forwards per length and model")
    parser.add_argument("--warmup", type=int, default=1, help="untimed forwards after the FLOP-counting one")
    parser.add_argument("--layers", type=positive, default=6, help="layers of the encoder (--model encoder)")
    parser.add_argument("--cap", type=positive, default=FixedPointAttentionConfig.max_iterations,
                        help="FPSA's most evaluations per layer (default: the project default)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        device = device_of(args.device)
    except ValueError as error:
        parser.error(str(error))
    if args.warmup < 0:
        parser.error(f"--warmup must be >= 0, got {args.warmup}")
    longest = MINILM_POSITIONS if args.model == "minilm" else 4096 if device.type == "cuda" else 1024
    lengths = args.lengths or [n for n in (64, 128, 256, 512, 1024, 2048, 4096) if n <= longest]
    if args.model == "minilm" and max(lengths) > MINILM_POSITIONS:
        parser.error(f"MiniLM has {MINILM_POSITIONS} positions; got lengths up to {max(lengths)} (use --model encoder)")

    config = FixedPointAttentionConfig(max_iterations=args.cap)
    vanilla, fixed_point, inputs = models(args.model, args.layers, config, args.seed, device)

    def random_inputs(length: int) -> dict:
        generator = rng("benchmark-tokens", length, args.seed)
        return inputs(torch.randint(VOCAB, (args.batch, length), generator=generator).to(device))

    table = length_sweep(vanilla, fixed_point, random_inputs, lengths, device, args.repeats, args.warmup,
                         cap=config.max_iterations)
    solver = (f"anderson (memory {config.anderson_memory})" if config.solver == "anderson"
              else f"damped (damping {config.damping})")
    print(f"FPSA vs vanilla: {args.model}, {device} ({torch.get_num_threads()} CPU threads), batch {args.batch}, "
          f"{args.repeats} repeats, solver {solver}, tol {config.tol}, cap {config.max_iterations}; "
          "times are medians, iterations are evaluations per layer and example")
    print(table[COLUMNS].to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    if len(set(lengths)) >= 3:
        for model in ("vanilla", "FPSA"):
            fit = fit_power_law(table["length"], table[f"{model} ms"])
            print(f"{model}: time ~ length^{fit.slope:.3f} ± {fit.stderr:.3f}")


if __name__ == "__main__":
    main()
