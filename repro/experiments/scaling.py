"""The cost of fixed-point self-attention (FPSA) against vanilla attention (notebook 10): refinement steps, FLOPs and
latency on real text, time against sequence length, and the memory a training step keeps as the iteration cap grows.

S6 reports how much FPSA spends (a median of 3-6 refinement steps, about 1.6x the GFLOPs and 1.3-1.4x the latency of
the vanilla encoder, time sublinear in length, training memory constant under implicit differentiation). A fixed
model is measured, so the replicates are corpora, length set-ups or caps, not seeds. The measurements themselves are
`repro.cost`'s (FLOPs counted on the operations run, latency after warm-up, saved-for-backward bytes); this module
assembles them:

- `load_text` draws the seeded text sample (SST-2 sentences, STS-B pairs, SQuAD contexts), `text_cost` runs every
  batch through the vanilla model and its FPSA twin at each solver (the pre-registered Anderson solver, and the
  authors' damped run settings for comparison): one row per (corpus, solver, layer, example) of refinement steps and
  one row per batch of FLOPs and times; `steps_tables` and `text_cost_table` summarise them, each count and ratio with
  the share of solves stopped at the cap beside it;
- `text_windows` and `random_tokens` feed `repro.cost.length_sweep`, `slopes_table` fits the power laws;
- `memory_sweep` measures one training step per gradient and cap at tolerance 0 (an implicit adjoint that misses its
  tolerance is a row "adjoint missed its tolerance"), `gradient_cosines` checks every gradient mode (and the Neumann
  series at other lengths: `neumann_budget`) against backpropagation through a long unrolled damped solve,
  `memory_growth` reads the claim's parts (the Neumann gradient's memory).
"""

import copy
import time
from dataclasses import dataclass, replace

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
import torch
from torch import nn

from repro import plots
from repro.claims import gate_of
from repro.cost import PowerLaw, fit_power_law, forward_cost, training_memory
from repro.data import glue, squad
from repro.data.batches import in_order
from repro.models.self_transformer import (GRADIENTS, AdjointDivergence, FixedPointAttentionConfig, adjoint_counts,
                                           fixed_point_aux, swap_bert_attention)
from repro.seeding import derive, rng, torch_seed
from repro.study import Settings, bounded

DEFAULT = FixedPointAttentionConfig()
"""The pre-registered solver (Anderson m = 5, tolerance 1e-3, cap 32): every claim of S6 is decided on it."""


def solver_name(config: FixedPointAttentionConfig) -> str:
    """A solver's name in every frame and table, e.g. "FPSA, anderson, cap 32"."""
    return f"FPSA, {config.solver}{f' {config.damping:g}' if config.solver == 'damped' else ''}, cap {config.max_iterations}"


BASE = solver_name(DEFAULT)
PAPER = {"steps": (3, 6), "flops": (1.6, 1.6), "latency": (1.3, 1.4)}
"""The paper's numbers (repro.claims, S6) as [low, high]: median refinement steps; GFLOPs and latency over vanilla."""
KEYS = ("input_ids", "attention_mask", "token_type_ids")
MIB = 2 ** 20


@dataclass(frozen=True)
class ScalingSettings(Settings):
    """The cost study's settings: the text sample and its batches, the solver's large cap, the timing repeats, the
    length sweeps of MiniLM and of the random-init encoder, and the training-memory batch and caps. `seeds` holds the
    one seed of the text sample, of the random encoder and its tokens, and of the dropout masks."""
    sst2: int  # SST-2 dev sentences sampled
    stsb: int  # STS-B dev sentence pairs sampled
    squad: int  # SQuAD dev contexts sampled
    max_tokens: int  # truncation of the sampled texts
    batch: int
    damped_cap: int  # the cap of the second solver, the authors' damped run settings (damping 0.5; their cap is 8)
    budget_cap: int  # a larger cap of the pre-registered solver: whether it would pass the gate fpsa_converges
    text_repeats: int  # timed forwards per batch
    warmup: int = bounded(0)  # untimed forwards after the FLOP-counting one
    minilm_lengths: tuple[int, ...]  # sequence lengths of the MiniLM sweep, at most its 512 positions
    minilm_batch: int
    encoder: dict  # `repro.cost.reference_encoder` keywords
    encoder_lengths: tuple[int, ...]  # sequence lengths of the random-init encoder's sweep
    encoder_batch: int
    sweep_repeats: int  # timed forwards per length and model
    memory_caps: tuple[int, ...]  # iteration caps of the training-memory sweep
    memory_batch: int
    memory_length: int  # tokens per window of the training step
    neumann_terms: tuple[int, ...]  # Neumann series lengths the gradient check tries beside the default's

    def __post_init__(self):
        super().__post_init__()
        if len(self.seeds) != 1:
            raise ValueError(f"setting seeds: the cost study measures one fixed model, give one seed, got {self.seeds}")
        if self.budget_cap <= DEFAULT.max_iterations:
            raise ValueError(f"setting budget_cap: it must exceed the pre-registered cap {DEFAULT.max_iterations}, "
                             f"got {self.budget_cap}")

    @property
    def seed(self) -> int:
        return self.seeds[0]

    def solvers(self) -> dict[str, FixedPointAttentionConfig]:
        """{name: config} of the pre-registered solver, of the damped one at `damped_cap` and of the pre-registered
        one at `budget_cap` (measured for its steps and FLOPs, never timed, and deciding nothing: it says whether a
        larger cap would let the solves converge)."""
        return {solver_name(c): c for c in (DEFAULT, FixedPointAttentionConfig(solver="damped",
                                                                               max_iterations=self.damped_cap),
                                            replace(DEFAULT, max_iterations=self.budget_cap))}


def check_positions(settings: ScalingSettings, model: nn.Module) -> None:
    """MiniLM runs only as long as its position table; longer lengths belong to the random-init encoder."""
    positions = model.config.max_position_embeddings
    if max(settings.minilm_lengths + (settings.max_tokens, settings.memory_length)) > positions:
        raise ValueError(f"MiniLM has {positions} positions; longer lengths belong to the random-init encoder")


def pick(items: list, count: int, name: str, seed: int) -> list:
    """`count` items drawn without replacement by the stream ("scaling-text", name, seed)."""
    order = torch.randperm(len(items), generator=rng("scaling-text", name, seed))[:count]
    return [items[i] for i in order.tolist()]


def load_text(settings: ScalingSettings) -> tuple[dict[str, tuple[list, list | None]], list[str]]:
    """({corpus: (first texts, second texts or None)} of the seeded sample; every SQuAD dev context once, in file
    order, which the length sweep reads as one stream of tokens)."""
    S = settings
    contexts = list(dict.fromkeys(example.context for example in squad.load_dev()))
    sst2, stsb = glue.load("SST-2", "dev"), glue.load("STS-B", "dev")
    pairs = pick(list(zip(stsb.text_a, stsb.text_b)), S.stsb, "stsb", S.seed)
    return {"SST-2 sentences": (pick(list(sst2.text_a), S.sst2, "sst2", S.seed), None),
            "STS-B pairs": ([a for a, _ in pairs], [b for _, b in pairs]),
            "SQuAD contexts": (pick(contexts, S.squad, "squad", S.seed), None)}, contexts


def encode(tokenizer, first: list[str], second: list[str] | None, max_tokens: int) -> tuple[torch.Tensor, ...]:
    """(input ids, attention mask, token types), truncated at `max_tokens` and sorted by length, so that similar
    lengths share a batch and little padding is run."""
    encoded = tokenizer(first, second, truncation=True, max_length=max_tokens, padding=True, return_tensors="pt")
    order = encoded["attention_mask"].sum(dim=1).argsort()
    return tuple(encoded[key][order] for key in KEYS)


def text_cost(vanilla: nn.Module, fixed_point: nn.Module, corpora: dict, tokenizer, settings: ScalingSettings,
              device: torch.device = torch.device("cpu")) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(one row per (corpus, solver, layer, example): its tokens, FPSA's evaluations, whether it stopped at the cap
    unconverged and the refinement steps, evaluations - 1; one row per batch: its examples and tokens, GFLOPs and
    median milliseconds of the vanilla model, and of `fixed_point` at each solver (timed at the default one only) with
    its solves and those at the cap). `fixed_point` (a BERT with FPSA swapped in) ends at the default solver."""
    S = settings
    steps, costs = [], []
    for corpus, texts in corpora.items():
        for index, batch in enumerate(in_order(encode(tokenizer, *texts, S.max_tokens), S.batch)):
            inputs = {key: t.to(device) for key, t in zip(KEYS, batch)}
            tokens = batch[1].sum(dim=1).tolist()
            base = forward_cost(vanilla, inputs, device, S.text_repeats, S.warmup)
            row = {"corpus": corpus, "batch": index, "examples": len(tokens), "tokens": sum(tokens),
                   "vanilla GFLOPs": base.flops / 1e9, "vanilla ms": 1e3 * base.latency.median}
            for solver, config in S.solvers().items():
                swap_bert_attention(fixed_point, config)
                spent = forward_cost(fixed_point, inputs, device, S.text_repeats if config is DEFAULT else 0, S.warmup)
                capped = ~fixed_point_aux(fixed_point)["converged"].cpu()  # every forward ran the same inputs
                row |= {f"{solver} GFLOPs": spent.flops / 1e9, f"{solver} solves": capped.numel(),
                        f"{solver} at cap": int(capped.sum())}
                if spent.latency is not None:
                    row[f"{solver} ms"] = 1e3 * spent.latency.median
                steps += [{"corpus": corpus, "solver": solver, "layer": layer, "tokens": n, "evaluations": e,
                           "at cap": c}
                          for layer, (per_example, at_cap) in enumerate(zip(spent.iterations.tolist(), capped.tolist()),
                                                                        start=1)
                          for n, e, c in zip(tokens, per_example, at_cap)]
            costs.append(row)
    swap_bert_attention(fixed_point, DEFAULT)
    return pd.DataFrame(steps).assign(steps=lambda d: d.evaluations - 1), pd.DataFrame(costs)


def steps_tables(steps: pd.DataFrame, solvers) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per (solver, corpus): the (layer, example) pairs, median and mean refinement steps, share at the cap, mean
    tokens; per layer: the median steps and share at the cap of each solver)."""
    summary = steps.groupby(["solver", "corpus"], sort=False).agg(
        pairs=("steps", "size"), median_steps=("steps", "median"), mean_steps=("steps", "mean"),
        at_cap=("at cap", "mean"), mean_tokens=("tokens", "mean")).loc[list(solvers)]
    per_layer = pd.concat({solver: rows.groupby("layer").agg(median_steps=("steps", "median"), at_cap=("at cap", "mean"))
                           for solver, rows in steps.groupby("solver", sort=False)}, axis=1)
    per_layer.columns = [f"{solver}: {what}" for solver, what in per_layer.columns]
    return summary, per_layer


def steps_text(table: pd.DataFrame) -> str:
    """One solver's rows of `steps_tables`' summary as text: each corpus's median steps and share at the cap."""
    return "; ".join(f"{corpus}: median {row.median_steps:g}, at cap {row.at_cap:.0%}"
                     for corpus, row in table.iterrows())


def larger_cap_evidence(summary: pd.DataFrame, solver: str) -> str:
    """What the pre-registered solver at `budget_cap` (`solver`) says about the gate fpsa_converges: its share of solves
    at the cap, mean over corpora as the gate reads it, beside each corpus's steps."""
    rows = summary.loc[solver]
    return (f"budget for the gate fpsa_converges: at {solver}, {rows.at_cap.mean():.1%} of the solves stop at the cap, "
            f"mean over corpora ({steps_text(rows)})")


def steps_figure(steps: pd.DataFrame, solvers: dict):
    """Refinement steps per layer and example, a box per (layer, corpus), one panel per solver, the paper's range
    shaded and the cap dashed."""
    fig, axes = plots.panels(len(solvers), width=6.5, height=4, sharey=False)
    for ax, (solver, config) in zip(axes, solvers.items()):
        sns.boxplot(data=steps[steps.solver == solver], x="layer", y="steps", hue="corpus", ax=ax, fliersize=2,
                    legend=solver == BASE)
        ax.axhspan(*PAPER["steps"], color="tab:green", alpha=0.12, label="paper: median {}-{}".format(*PAPER["steps"]))
        ax.axhline(config.max_iterations - 1, color="grey", ls="--", lw=0.8)
        ax.set(title=f"{solver} (dashed: the cap)", xlabel="encoder layer",
               ylabel="refinement steps per layer and example", ylim=(-0.3, config.max_iterations - 0.5))
    axes[0].legend(fontsize=7, loc="lower right")
    fig.suptitle("Pretrained MiniLM with FPSA swapped in (not trained with FPSA)", fontsize=10)
    fig.tight_layout()
    return fig


def ratios(rows: pd.DataFrame, solvers) -> dict:
    """FPSA over vanilla on the summed FLOPs and summed per-batch median times of these batches, each solver's ratio
    beside the share of its solves (layer x example) stopped at the cap."""
    per_solver = {}
    for solver in solvers:
        per_solver[f"{solver} FLOPs ratio"] = rows[f"{solver} GFLOPs"].sum() / rows["vanilla GFLOPs"].sum()
        if solver == BASE:
            per_solver[f"{BASE} latency ratio"] = rows[f"{BASE} ms"].sum() / rows["vanilla ms"].sum()
        per_solver[f"{solver} at cap"] = rows[f"{solver} at cap"].sum() / rows[f"{solver} solves"].sum()
    return per_solver | {"vanilla GFLOPs": rows["vanilla GFLOPs"].sum(), "vanilla ms": rows["vanilla ms"].sum()}


def text_cost_table(costs: pd.DataFrame, solvers) -> pd.DataFrame:
    """`ratios` per corpus (the replicates of S6.steps, S6.flops, S6.latency) and over all batches ("all")."""
    return pd.DataFrame({**{corpus: ratios(rows, solvers) for corpus, rows in costs.groupby("corpus", sort=False)},
                         "all": ratios(costs, solvers)}).T


def squad_stream(tokenizer, contexts: list[str], count: int) -> torch.Tensor:
    """The first `count` WordPiece tokens of `contexts`, in order."""
    ids = []
    for context in contexts:
        ids += tokenizer(context, add_special_tokens=False)["input_ids"]
        if len(ids) >= count:
            return torch.tensor(ids[:count])
    raise ValueError(f"the SQuAD dev contexts hold {len(ids)} tokens, fewer than the {count} asked for")


def text_windows(stream: torch.Tensor, tokenizer, length: int, batch: int,
                 device: torch.device = torch.device("cpu")) -> dict:
    """`batch` windows of `length` tokens, [CLS] consecutive tokens of `stream` [SEP], no padding: BERT inputs."""
    if batch * (length - 2) > len(stream):
        raise ValueError(f"{batch} windows of {length} tokens need {batch * (length - 2)} stream tokens, "
                         f"the stream holds {len(stream)}")
    body = stream[:batch * (length - 2)].view(batch, length - 2)
    column = lambda token: torch.full((batch, 1), token)  # noqa: E731
    ids = torch.cat([column(tokenizer.cls_token_id), body, column(tokenizer.sep_token_id)], dim=1)
    return {"input_ids": ids.to(device), "attention_mask": torch.ones_like(ids).to(device),
            "token_type_ids": torch.zeros_like(ids).to(device)}


def random_tokens(vocab: int, batch: int, length: int, seed: int, device: torch.device = torch.device("cpu")) -> dict:
    """`batch` sequences of `length` uniform token ids from the stream ("scaling-tokens", length, seed): inputs of
    `repro.cost.reference_encoder`."""
    tokens = torch.randint(vocab, (batch, length), generator=rng("scaling-tokens", length, seed))
    return {"tokens": tokens.to(device)}


def slopes_table(sweeps: pd.DataFrame) -> tuple[dict[str, dict[str, PowerLaw]], pd.DataFrame]:
    """({setup: {model: power law of time on length}}; one row per setup: both slopes with their standard errors,
    FPSA minus vanilla (the part of S6.sublinear) and the time ratio at the shortest and longest length)."""
    fits, rows = {}, []
    for setup, table in sweeps.groupby("setup", sort=False):
        fits[setup] = {model: fit_power_law(table.length, table[f"{model} ms"]) for model in ("vanilla", "FPSA")}
        v, f = fits[setup]["vanilla"], fits[setup]["FPSA"]
        rows.append({"setup": setup, "lengths": f"{table.length.min()}-{table.length.max()}",
                     "vanilla slope": v.slope, "vanilla SE": v.stderr, "FPSA slope": f.slope, "FPSA SE": f.stderr,
                     "difference": f.slope - v.slope, "difference SE": (v.stderr ** 2 + f.stderr ** 2) ** 0.5,
                     # The literal reading, time ~ length^s with s < 1, for reference; the verdict is relative.
                     "FPSA slope + 2 SE < 1": f.slope + 2 * f.stderr < 1,
                     "time ratio, shortest": table["time ratio"].iloc[0],
                     "time ratio, longest": table["time ratio"].iloc[-1]})
    return fits, pd.DataFrame(rows).set_index("setup")


def length_figure(sweeps: pd.DataFrame, fits: dict, device_name: str):
    """Left: forward time against length (log-log, median ± IQR/2) with the fitted power laws; right: FPSA over
    vanilla in time and in FLOPs against length, the paper's latency range shaded."""
    fig, axes = plots.panels(2, width=6.5, height=4.2, sharey=False)
    for (setup, table), color in zip(sweeps.groupby("setup", sort=False), ("tab:blue", "tab:orange")):
        for model, style in (("vanilla", "--"), ("FPSA", "-")):
            fit = fits[setup][model]
            axes[0].errorbar(table.length, table[f"{model} ms"], yerr=table[f"{model} IQR ms"] / 2, fmt="o",
                             color=color, ms=4, mfc="none" if model == "vanilla" else color)
            axes[0].plot(table.length, fit.prefactor * table.length ** fit.slope, style, color=color,
                         label=f"{setup}, {model}: slope {fit.slope:.2f} ± {fit.stderr:.2f}")
        axes[1].plot(table.length, table["time ratio"], "-o", color=color, label=f"{setup}: time")
        axes[1].plot(table.length, table["FLOPs ratio"], ":s", color=color, label=f"{setup}: FLOPs")
    axes[0].set(xscale="log", yscale="log", xlabel="sequence length (tokens)",
                ylabel="forward time (ms, median ± IQR/2)", title=f"time against length ({device_name})")
    axes[1].axhspan(*PAPER["latency"], color="tab:green", alpha=0.15,
                    label="paper latency {}-{}x".format(*PAPER["latency"]))
    axes[1].set(xscale="log", xlabel="sequence length (tokens)", ylabel="FPSA / vanilla (ratio)",
                title="cost ratio against length")
    lengths = sorted(sweeps.length.unique())
    for ax in axes:
        ax.minorticks_off()
        ax.set_xticks(lengths, [str(n) for n in lengths])
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(0, -0.15), ncol=2)
    fig.tight_layout()
    return fig


def bert_loss(model: nn.Module, inputs: dict):
    """The scalar of a training step on `inputs`: the mean square of the last hidden state."""
    return lambda: model(**inputs).last_hidden_state.square().mean()


def measure(model: nn.Module, inputs: dict, gradient: str, cap: int, seed: int,
            device: torch.device = torch.device("cpu")) -> dict:
    """One training step's saved-for-backward MiB (and CUDA peak, NaN on CPU) and seconds, under the dropout masks of
    the stream ("scaling-memory", seed), the same for every run."""
    with torch_seed(derive("scaling-memory", seed), device):
        started = time.perf_counter()
        try:
            spent = training_memory(bert_loss(model, inputs), model, device)
        except AdjointDivergence as error:
            # A wrong gradient has no memory worth reporting: the row says what happened instead.
            return {"gradient": gradient, "cap": cap, "saved MiB": float("nan"), "CUDA peak MiB": float("nan"),
                    "step seconds": time.perf_counter() - started, "outcome": "adjoint missed its tolerance", "detail": str(error)}
        seconds = time.perf_counter() - started
    return {"gradient": gradient, "cap": cap, "saved MiB": spent.saved_bytes / MIB,
            "CUDA peak MiB": spent.cuda_peak_bytes / MIB if spent.cuda_peak_bytes is not None else float("nan"),
            "step seconds": seconds, "outcome": "ok", "detail": ""}


def memory_sweep(vanilla: nn.Module, inputs: dict, caps, seed: int,
                 device: torch.device = torch.device("cpu")) -> pd.DataFrame:
    """One row per (gradient, cap), plus vanilla attention: one training step (train mode, the default solver at
    tolerance 0, so every example runs to the cap) of copies of `vanilla`, which stays as it is. "outcome" is "ok" or
    "adjoint missed its tolerance" (an implicit adjoint that missed its tolerance: no memory recorded, the error in "detail")."""
    memory_vanilla = copy.deepcopy(vanilla).train()
    memory_fpsa = swap_bert_attention(copy.deepcopy(vanilla).train(), DEFAULT)
    rows = [measure(memory_vanilla, inputs, "vanilla attention", 1, seed, device)]
    for gradient in GRADIENTS:
        for cap in caps:
            swap_bert_attention(memory_fpsa, replace(DEFAULT, tol=0.0, max_iterations=cap, gradient=gradient))
            rows.append(measure(memory_fpsa, inputs, gradient, cap, seed, device))
            ran = fixed_point_aux(memory_fpsa)["iterations"]
            if not (ran == cap).all():
                raise RuntimeError(f"with tolerance 0 every example should run {cap} evaluations, "
                                   f"got {ran.unique().tolist()}")
    return pd.DataFrame(rows)


def parameter_gradient(model: nn.Module, inputs: dict, config: FixedPointAttentionConfig) -> torch.Tensor:
    """The gradient of `bert_loss` over every trainable parameter (zeros where unused), in float64, with FPSA at
    `config`."""
    swap_bert_attention(model, config)
    parameters = [p for p in model.parameters() if p.requires_grad]
    grads = torch.autograd.grad(bert_loss(model, inputs)(), parameters, allow_unused=True)
    return torch.cat([(torch.zeros_like(p) if g is None else g).flatten() for p, g in zip(parameters, grads)]).double()


def gradient_cosines(vanilla: nn.Module, inputs: dict, cap: int, neumann_terms: tuple[int, ...] = ()) -> pd.DataFrame:
    """The gate of S6.memory (a constant memory is worth nothing for a wrong gradient): one row per gradient mode at
    the default solver, tolerance 0 and `cap` evaluations, with its cosine and norm ratio against backpropagation
    through 4 x `cap` damped evaluations (the reference; its largest final residual is reported beside it) and the
    per-example adjoint outcomes of its backward (implicit recorded, not raised). Then one row "neumann, k terms" per
    `neumann_terms` count other than the default's: the series length at which the gate would pass, if any
    (`neumann_budget`). Eval mode, so that no dropout mask separates the runs."""
    model = swap_bert_attention(copy.deepcopy(vanilla).eval(), DEFAULT)
    reference = parameter_gradient(model, inputs, replace(DEFAULT, solver="damped", tol=0.0, max_iterations=4 * cap,
                                                          gradient="unrolled"))
    reference_residual = fixed_point_aux(model)["residuals"].max().item()
    modes = {gradient: (gradient, DEFAULT.neumann_steps) for gradient in GRADIENTS}
    modes |= {f"neumann, {k} terms": ("neumann", k) for k in neumann_terms if k != DEFAULT.neumann_steps}
    rows = []
    for name, (gradient, terms) in modes.items():
        grad = parameter_gradient(model, inputs, replace(DEFAULT, tol=0.0, max_iterations=cap, gradient=gradient,
                                                         neumann_steps=terms, adjoint_failure="record"))
        counts = pd.DataFrame(adjoint_counts(model))[["converged", "stalled", "diverged"]].sum().to_dict()
        rows.append({"gradient": name, "neumann terms": terms if gradient == "neumann" else None, "cap": cap,
                     "cosine": torch.nn.functional.cosine_similarity(grad, reference, dim=0).item(),
                     "norm ratio": (grad.norm() / reference.norm()).item(), "reference cap": 4 * cap,
                     "reference residual": reference_residual,
                     **{f"adjoint {outcome}": n for outcome, n in counts.items()}})
    return pd.DataFrame(rows).set_index("gradient")


def neumann_budget(cosines: pd.DataFrame, threshold: float) -> str:
    """What the gate `gradient_accurate` (cosine >= `threshold`) would ask of the Neumann series: the fewest terms
    among those `gradient_cosines` tried whose cosine passes, or that none does and the best. It decides nothing: the
    rule reads the default's row."""
    terms = cosines.dropna(subset="neumann terms").set_index("neumann terms")["cosine"].sort_index()
    terms.index = terms.index.astype(int)
    tried = ", ".join(f"{k}: {cosine:.4f}" for k, cosine in terms.items())
    passing = terms[terms >= threshold]
    if not passing.empty:
        return (f"the gate would pass with {passing.index[0]} Neumann terms (the default has {DEFAULT.neumann_steps}; "
                f"cosine by terms {tried})")
    return (f"no Neumann series of {terms.index.min()}-{terms.index.max()} terms passes the gate (cosine by terms "
            f"{tried}; best {terms.max():.4f} at {terms.idxmax()})")


def memory_growth(memory: pd.DataFrame) -> dict:
    """The part of S6.memory, the Neumann gradient's saved memory at each cap over that at the smallest cap, minus 1
    (one value per cap above the smallest), and the spreads: Neumann and unrolled, largest over smallest, minus 1."""
    neumann = memory[memory.gradient == "neumann"].set_index("cap")["saved MiB"]
    unrolled = memory[memory.gradient == "unrolled"]["saved MiB"]
    smallest = neumann.index.min()
    return {"growth": (neumann / neumann.loc[smallest] - 1).drop(smallest),
            "neumann spread": neumann.max() / neumann.min() - 1, "unrolled growth": unrolled.max() / unrolled.min() - 1,
            "neumann MiB": (neumann.min(), neumann.max()), "unrolled MiB": (unrolled.min(), unrolled.max())}


def memory_evidence(memory: pd.DataFrame, cosines: pd.DataFrame, settings: ScalingSettings) -> str:
    """The S6.memory evidence: the spread of the Neumann gradient's memory over the caps, the growth of the unrolled
    one, the largest memory of every other gradient (or how many of its steps diverged), the cosines of every mode
    (`gradient_cosines`) and what the gate would ask of the Neumann series (`neumann_budget`)."""
    growth = memory_growth(memory)
    ok = memory[memory.outcome == "ok"].groupby("gradient")["saved MiB"].max()
    missed = memory[memory.outcome == "adjoint missed its tolerance"].groupby("gradient")["cap"].apply(list)
    others = "; ".join([f"{g} {ok[g]:.1f} MiB" for g in ("implicit", "phantom", "vanilla attention") if g in ok] +
                       [f"{g}: adjoint missed its tolerance at caps {caps}" for g, caps in missed.items()])
    row = lambda g: f"{g} {cosines.at[g, 'cosine']:.4f} (norm {cosines.at[g, 'norm ratio']:.2f})"  # noqa: E731
    return (f"one training step on {settings.memory_batch} x {settings.memory_length} tokens, tolerance 0: neumann "
            f"varies by {growth['neumann spread']:.1%} over caps {list(settings.memory_caps)}, unrolled grows by "
            f"{growth['unrolled growth']:.0%} ({' -> '.join(f'{v:.1f}' for v in growth['unrolled MiB'])} MiB); "
            f"{others}; cosine with backpropagation through {int(cosines['reference cap'].iloc[0])} damped evaluations "
            f"(eval mode, all parameters; reference residual {cosines['reference residual'].iloc[0]:.1e}) at cap "
            f"{int(cosines['cap'].iloc[0])}: {', '.join(row(g) for g in cosines.index)}; "
            + neumann_budget(cosines, gate_of("S6.memory", "gradient_accurate").threshold))


def memory_figure(memory: pd.DataFrame, settings: ScalingSettings, on_cuda: bool):
    """Saved-for-backward MiB (and, on CUDA, the peak) of one training step against the cap, one line per gradient,
    vanilla attention dashed."""
    columns = ["saved MiB"] + (["CUDA peak MiB"] if on_cuda else [])
    fig, axes = plots.panels(len(columns), width=6.0 if on_cuda else 6.5, height=4, sharey=False)
    for ax, column in zip(axes, columns):
        # The constant-memory gradients coincide: distinct dashes and markers keep each line visible.
        sns.lineplot(data=memory[(memory.gradient != "vanilla attention") & (memory.outcome == "ok")], x="cap", y=column,
                     hue="gradient",
                     style="gradient", hue_order=list(GRADIENTS), style_order=list(GRADIENTS), markers=True, ax=ax)
        ax.axhline(memory.loc[memory.gradient == "vanilla attention", column].item(), color="grey", ls="--", lw=0.8,
                   label="vanilla attention")
        ax.set(xscale="log", xlabel="iterations per layer (tolerance 0)", ylabel=column.replace(" MiB", " (MiB)"),
               title=f"one training step, batch {settings.memory_batch} x {settings.memory_length} tokens")
        ax.minorticks_off()
        ax.set_xticks(settings.memory_caps, [str(c) for c in settings.memory_caps])
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def slopes_evidence(slopes: pd.DataFrame) -> str:
    """The S6.sublinear evidence: per setup of `slopes_table`, both slopes with their standard errors, their
    difference and the FPSA/vanilla time ratio at the shortest and the longest length."""
    return "; ".join(f"{setup} ({row.lengths} tokens): vanilla {row['vanilla slope']:.2f} ± {row['vanilla SE']:.2f}, "
                     f"FPSA {row['FPSA slope']:.2f} ± {row['FPSA SE']:.2f}, difference {row['difference']:+.2f} ± "
                     f"{row['difference SE']:.2f}, time ratio {row['time ratio, shortest']:.2f}x -> "
                     f"{row['time ratio, longest']:.2f}x" for setup, row in slopes.iterrows())
