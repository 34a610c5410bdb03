"""Training-step throughput of every notebook's main training loop in the cpu profile, on one thread: the table of
the README's performance section, by which every speed change is judged.

    python benchmarks/train_step.py [--steps N] [--warmup 3] [--only 01-adatape 03-sudoku ...]

The runs are the pipelines' own. Each notebook is executed from its .ipynb as `make reproduce` runs it (cpu profile,
results and figures into a temporary folder, its printed output swallowed) until it calls `repro.train.train` for
the run an entry names (`ENTRIES`: the run's progress-bar label), so model, loss, batch stream and training config
are exactly what the notebook trains. The runs before it train one step each, so the notebook gets there in seconds;
it stops after its last entry.

A row of the markdown table:
- steps/s and ms/step: `repro.train.train`'s step (batch, loss, backward, clipping, fused AdamW, schedule), averaged
  over the timed steps (each entry's own count, or `--steps`) after `--warmup` untimed ones, at the steps the run
  itself would take them;
- data / forward / backward / optimizer: the shares of the step spent drawing and moving the batch, computing the
  loss, in backward, and clipping plus the optimizer and schedule steps;
- GFLOP/step and GFLOP/s: the matrix products of those same steps, forward and backward (`repro.cost.count_flops`),
  counted on a replay from the state the timed steps started from, so an adaptive model is charged for the
  iterations it ran; over the timed seconds;
- ceiling GFLOP/s and % of ceiling: the fp32 matmul rate at `CEILING_SHAPE` on one thread, measured just before
  the run's steps (it moves with whatever else the machine runs: 105-220 GFLOP/s on a shared two-core machine), and
  the run's rate as a share of it;
- ATen ops/step: the operators that reach a kernel per step, forward and backward (counted on the replay below
  autograd, so a composite op counts as its parts): at tens of microseconds each, the small models' time is set by
  how many ops they dispatch rather than by their FLOPs;
- host reads/step: those of the ops that make the host wait for the device (`repro.device_sync.reads_the_device`:
  scalar reads such as `.item()` or `bool()` of a tensor, boolean-mask indexing, `nonzero`, `torch.equal`, and
  copies to the host such as `.tolist()`), each a synchronisation on an accelerator, counted on the replay in the
  CPU's form of the loops (the one timed); sync-free host reads/step: the same count on a replay of the same steps in
  the form an accelerator runs (`repro.device_sync.forced_sync_free`). Neither counts the reads of building a batch
  (`batch_at`), which works on CPU tensors that no device waits for. The training loop's own is its loss read, once
  per `repro.train.LOSS_READ_EVERY` steps, evaluation and checkpoint (here: once over the timed steps). The looped
  models' progressive loss reads its two draws of iteration counts each step (`int(torch.randint(...))`): counted,
  though they come from the CPU's generator and no device waits for them either.

The looped models' progressive loss draws its iteration counts per step, so their rows average over the draws of
the timed steps: the same draws on every run of the benchmark (the training seed is the run's), different ones for
another `--steps`. A benchmark, never part of the tests.
"""

import argparse
import copy
import time
from dataclasses import dataclass, replace

import torch
from torch import nn

import repro.train
from repro.cost import count_flops, time_forward
from repro.device_sync import HostReadCounter, forced_sync_free
from repro.intercept import execute_intercepted
from repro.nn import count_parameters
from repro.seeding import derive, rng, torch_seed
from repro.train import LossWindow, adamw, learning_rate_factor, to_device

CPU = torch.device("cpu")
PROFILE = "cpu"
PHASES = ("data", "forward", "backward", "optimizer")
CEILING_SHAPE = (2048, 384, 1536)
"""(m, k, n) of the fp32 matmul whose rate is the ceiling: MiniLM's feed-forward product over a batch of 16
sequences of 128 tokens, the largest product the cpu profile runs."""


@dataclass(frozen=True)
class Entry:
    notebook: str
    run: str
    """The description `repro.train.train` gets for the run timed (its progress-bar label)."""
    steps: int = 40
    """Timed steps: a few seconds of the small models' steps, fewer of the costly ones (each is also replayed)."""


LOOPED_RUN = "recall standard, outer norm on seed 0"
"""The looped configuration timed in 02-04: recall with outer norm, the one the framework calls stable."""
ENTRIES = {
    "01-ut": Entry("01_parity", "adatape Universal Transformer (ACT) seed 0"),
    "01-adatape": Entry("01_parity", "adatape AdaTape (input bank) seed 0"),
    "02-prefix-sums": Entry("02_prefix_sums", LOOPED_RUN),
    "03-sudoku": Entry("03_sudoku", LOOPED_RUN),
    "04-chess": Entry("04_chess", LOOPED_RUN),
    "05-glue-minilm": Entry("05_glue", "pretrained STS-B seed 0 vanilla", steps=10),
    "05-glue-minilm-fpsa": Entry("05_glue", "pretrained STS-B seed 0 FPSA", steps=5),
    "06-squad": Entry("06_squad", "seed 0 vanilla", steps=10),
    "06-squad-fpsa": Entry("06_squad", "seed 0 FPSA", steps=5),
    "07-vit": Entry("07_image_classification", "cifar10 ViT seed 0", steps=20),
    "07-self-vit": Entry("07_image_classification", "cifar10 SELF-ViT seed 0", steps=10),
    "07-adatape": Entry("07_image_classification", "cifar10 AdaTape (input bank) seed 0", steps=20),
    "08-restoration": Entry("08_image_restoration", "denoise vanilla seed 0"),
    "08-restoration-fpsa": Entry("08_image_restoration", "denoise FPSA seed 0"),
    "09-vqa": Entry("09_vqa_retrieval", "easy-VQA vanilla seed 0"),
    "09-vqa-fpsa": Entry("09_vqa_retrieval", "easy-VQA FPSA seed 0"),
}
"""Name -> the notebook and the run of its main training loop that the row times (seed 0, first task or dataset);
the SELF notebooks' FPSA arm beside their vanilla one."""


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def matmul_ceiling(repeats: int = 10) -> float:
    """GFLOP/s of an fp32 matmul at `CEILING_SHAPE` (median of `repeats`)."""
    m, k, n = CEILING_SHAPE
    generator = rng("matmul-ceiling")
    a, b, out = torch.randn(m, k, generator=generator), torch.randn(k, n, generator=generator), torch.empty(m, n)
    return 2 * m * k * n / time_forward(lambda: torch.mm(a, b, out=out), CPU, repeats, warmup=2).median / 1e9


class Trainer:
    """The step of `repro.train.train` (on the CPU, where it runs without autocast), timed in its four phases, with
    its whole state (weights, optimizer, schedule, random state) kept aside and put back for a replay. Like
    `repro.train.train` it leaves each step's loss on the device (`repro.train.LossWindow`)."""

    def __init__(self, model: nn.Module, loss_fn, data, config: repro.train.TrainConfig):
        self.model, self.loss_fn, self.data, self.config = model, loss_fn, data, config
        self.optimizer = adamw(model, config, CPU)
        self.schedule = torch.optim.lr_scheduler.LambdaLR(self.optimizer,
                                                          lambda step: learning_rate_factor(step, config))
        self.losses = LossWindow([], "benchmark")

    def step(self, step: int) -> list[float]:
        """Seconds of each of `PHASES`."""
        started = time.perf_counter()
        batch = to_device(self.data.batch_at(step), CPU)
        drawn = time.perf_counter()
        loss = self.loss_fn(self.model, batch)
        self.losses.add(step, self.schedule.get_last_lr()[0], loss)
        forward = time.perf_counter()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        backward = time.perf_counter()
        nn.utils.clip_grad_norm_(self.model.parameters(), self.config.clip_norm)
        self.optimizer.step()
        self.schedule.step()
        return [drawn - started, forward - drawn, backward - forward, time.perf_counter() - backward]

    def steps(self, steps: range) -> list[list[float]]:
        """`step` over `steps`, then one read of their losses, as `repro.train.train` reads them at an evaluation."""
        seconds = [self.step(step) for step in steps]
        self.losses.read()
        return seconds

    def state(self) -> dict:
        return copy.deepcopy({"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                              "schedule": self.schedule.state_dict(), "rng": torch.get_rng_state()})

    def restore(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        torch.set_rng_state(state["rng"])


def measure(model: nn.Module, loss_fn, data, config, device: torch.device, steps: int, warmup: int) -> dict:
    """Time `steps` training steps after `warmup` ones, then replay them from the same state to count their FLOPs,
    ATen ops and host reads, and once more in the sync-free form of the loops for its host reads; the model is left
    in its initial state."""
    if device != CPU:
        raise ValueError(f"the cpu profile trains on the CPU, this run is on {device}")
    torch.set_num_threads(1)
    ceiling = matmul_ceiling()
    initial = copy.deepcopy(model.state_dict())
    timed = range(warmup, warmup + steps)
    with torch_seed(derive("train", config.seed)):
        trainer = Trainer(model.train(), loss_fn, data, config)
        trainer.steps(range(warmup))
        before = trainer.state()
        seconds = torch.tensor(trainer.steps(timed)).sum(dim=0)
        trainer.restore(before)
        with HostReadCounter() as ops:
            flops = count_flops(lambda: trainer.steps(timed))
        trainer.restore(before)
        with forced_sync_free(), HostReadCounter() as sync_free_ops:
            trainer.steps(timed)
        with HostReadCounter() as batch_reads:  # the host's own, on the CPU tensors it builds batches from
            for step in timed:
                data.batch_at(step)
    model.load_state_dict(initial)
    return {"parameters": count_parameters(model), "ceiling": ceiling, "steps": steps,
            "seconds": seconds.sum().item(),
            "phases": dict(zip(PHASES, (seconds / seconds.sum()).tolist())), "flops": flops, "ops": ops.operators,
            "host_reads": ops.reads - batch_reads.reads,
            "sync_free_host_reads": sync_free_ops.reads - batch_reads.reads}


def one_step(train, arguments: dict):
    """Train a run the benchmark does not time for one step, without evaluations or checkpoints, so that the
    notebook reaches the runs it does time in seconds."""
    arguments["config"] = replace(arguments["config"], steps=1, warmup_steps=0, eval_every=0, checkpoint_every=0,
                                  progress=False)
    arguments["checkpoint"] = None
    return train(**arguments)


class NotebookDone(Exception):
    """Raised by the training hook once a notebook's last entry is measured: the rest of the notebook is not run."""


def measure_notebook(stem: str, runs: dict[str, tuple[str, int]], warmup: int) -> dict[str, dict]:
    """Execute notebook `stem` in the cpu profile, measuring each run of `runs` (description -> entry name and timed
    steps) when the notebook trains it; the other runs train one step. Returns entry name -> `measure`'s row."""
    measured, seen = {}, []

    def hook(train, arguments):
        description = arguments["description"]
        seen.append(description)
        if description in runs:
            name, steps = runs[description]
            measured[name] = measure(arguments["model"], arguments["loss_fn"], arguments["data"], arguments["config"],
                                     arguments["device"], steps, warmup)
            if len(measured) == len(runs):
                raise NotebookDone
        return one_step(train, arguments)

    try:
        execute_intercepted(stem, PROFILE, hook)
    except NotebookDone:
        return measured
    missing = [description for description, (name, _) in runs.items() if name not in measured]
    raise ValueError(f"notebook {stem} never trained the run(s) {missing}; its runs were {seen}")


def row(name: str, entry: Entry, result: dict) -> dict[str, str]:
    steps, rate = result["steps"], result["flops"] / result["seconds"] / 1e9
    return {"run": name, "notebook: run": f"{entry.notebook}: {entry.run}", "parameters": f"{result['parameters']:,}",
            "timed steps": str(steps), "steps/s": f"{steps / result['seconds']:.1f}",
            "ms/step": f"{1e3 * result['seconds'] / steps:.1f}",
            "GFLOP/step": f"{result['flops'] / steps / 1e9:.3f}", "GFLOP/s": f"{rate:.1f}",
            "ceiling GFLOP/s": f"{result['ceiling']:.0f}", "% of ceiling": f"{100 * rate / result['ceiling']:.0f}",
            "ATen ops/step": f"{result['ops'] / steps:,.0f}", "host reads/step": f"{result['host_reads'] / steps:,.1f}",
            "sync-free host reads/step": f"{result['sync_free_host_reads'] / steps:,.1f}",
            **{f"{phase} %": f"{100 * share:.0f}" for phase, share in result["phases"].items()}}


def markdown(rows: list[dict[str, str]]) -> str:
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |",
             "|" + "|".join("---" if column in ("run", "notebook: run") else "---:" for column in columns) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r[column] for column in columns) + " |" for r in rows])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=positive, help="timed training steps of every run (default: each run's own)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed training steps before them")
    parser.add_argument("--only", nargs="+", metavar="NAME", help=f"the runs to time (default: all): {list(ENTRIES)}")
    args = parser.parse_args(argv)
    if args.warmup < 0:
        parser.error(f"--warmup must be >= 0, got {args.warmup}")
    unknown = sorted(set(args.only or ()) - set(ENTRIES))
    if unknown:
        parser.error(f"unknown run(s) {unknown}; valid: {list(ENTRIES)}")
    names = [name for name in ENTRIES if args.only is None or name in args.only]
    torch.set_num_threads(1)
    results = {}
    for stem in dict.fromkeys(ENTRIES[name].notebook for name in names):
        runs = {ENTRIES[name].run: (name, args.steps or ENTRIES[name].steps)
                for name in names if ENTRIES[name].notebook == stem}
        results |= measure_notebook(stem, runs, args.warmup)
    m, k, n = CEILING_SHAPE
    print(f"training steps, profile {PROFILE}, torch {torch.__version__}, {torch.get_num_threads()} thread; "
          f"{args.warmup} untimed steps before the timed ones; ceiling: fp32 matmul {m}x{k} @ {k}x{n}")
    print(markdown([row(name, ENTRIES[name], results[name]) for name in names]))


if __name__ == "__main__":
    main()
