"""Sudoku from the qqwing generator, with two difficulty axes and validity-preserving augmentation.

A board is 81 cells in row-major order; a cell holds 0 (blank) or a digit 1..9. Difficulty has
two independent axes:
- qqwing's class (`DIFFICULTIES`): the hardest human technique its logical solver needs
  (simple: singles only; easy: hidden singles; intermediate: pairs and intersections; expert:
  guessing). qqwing puzzles of every class have about 22-29 givens, so the class is not a proxy
  for the number of givens.
- the number of givens: `reveal_givens` copies extra cells from the solution into the puzzle, as
  the Recurrent Relational Networks set does (fewer givens = harder). A puzzle with a unique
  solution keeps it when cells of that solution are revealed.

Reproducibility: qqwing has no seed option; it calls `srand(time(NULL))` once per run
(qqwing 1.3.4, src/cpp/main.cpp), so its output depends on the wall-clock second it starts in and
is NOT reproducible from our seeds. Two runs started in the same second emit the same puzzle
stream (difficulty classes are disjoint filters of it), so every split of one difficulty must come
from one `generate` call. A generated set becomes reproducible once it is cached:
`load_or_generate` writes it under a caller-given directory (gzip-compressed, with a sha256
sidecar) and reuses it; the study commits its sets under `data/sudoku/`, listed in data/MANIFEST.json. A cached
set is never regenerated behind the caller's back (new puzzles would differ from the lost ones): only
`generate_set` writes over one. Everything done to the
puzzles after generation (revealing givens, augmentation, training batches) is seeded through
`repro.seeding` and never touches the global random state.
"""

import csv
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from repro.config import choice
from repro.data.files import verify_if_committed, write_atomically
from repro.losses import IGNORE
from repro.seeding import rng

DIFFICULTIES = ("simple", "easy", "intermediate", "expert")
"""qqwing's difficulty classes, easiest first; `SudokuSet.difficulty` holds indices into this."""

CELLS = 81
CELL_ROW = torch.arange(CELLS) // 9
CELL_COLUMN = torch.arange(CELLS) % 9
CELL_BOX = (CELL_ROW // 3) * 3 + CELL_COLUMN // 3
"""Row, column and box index (0..8) of each of the 81 cells: the model's structure embeddings."""

UNITS = {"row": CELL_ROW, "column": CELL_COLUMN, "box": CELL_BOX}

QQWING_INSTALL_HINT = (
    "install the Debian/Ubuntu package (`apt-get install qqwing`; `make setup` does this where apt "
    "is available) or build it from https://qqwing.com")


@dataclass(frozen=True)
class SudokuSet:
    """Puzzles with their unique solutions and qqwing difficulty class."""

    puzzles: torch.Tensor
    """(N, 81) uint8, 0 = blank, 1..9 = given digit."""
    solutions: torch.Tensor
    """(N, 81) uint8, digits 1..9."""
    difficulty: torch.Tensor
    """(N,) int64 index into `DIFFICULTIES`."""

    def __len__(self) -> int:
        return len(self.puzzles)

    def subset(self, index) -> "SudokuSet":
        """The puzzles at `index` (a slice, an index tensor or a boolean mask)."""
        return SudokuSet(self.puzzles[index], self.solutions[index], self.difficulty[index])

    def givens(self) -> torch.Tensor:
        """(N,) number of given cells per puzzle."""
        return (self.puzzles != 0).sum(dim=1)


def concatenate(parts: Sequence[SudokuSet]) -> SudokuSet:
    """The puzzles of every part, in order."""
    return SudokuSet(*(torch.cat([getattr(part, name) for part in parts])
                       for name in ("puzzles", "solutions", "difficulty")))


# --- text form -------------------------------------------------------------------------------

def parse_board(text: str, record: str, blanks_allowed: bool = True) -> list[int]:
    """81 cells from an 81-character row-major string ('1'-'9' digits, '.' or '0' blanks).

    `record` names the input in the error message (e.g. 'qqwing line 12, puzzle')."""
    if len(text) != CELLS:
        raise ValueError(f"sudoku {record}: expected {CELLS} characters (row-major 9x9 board), "
                         f"got {len(text)}: {text!r}")
    cells = []
    for index, character in enumerate(text):
        if character in "123456789":
            cells.append(int(character))
        elif character in ".0" and blanks_allowed:
            cells.append(0)
        else:
            valid = "'1'-'9' or a blank '.'/'0'" if blanks_allowed else "'1'-'9' (a solution has no blanks)"
            raise ValueError(f"sudoku {record}: invalid character {character!r} at row {index // 9 + 1}, "
                             f"column {index % 9 + 1}; valid: {valid}")
    return cells


def board_string(board: Sequence[int] | torch.Tensor) -> str:
    """The 81-character form of a board, '.' for blanks."""
    return "".join("." if int(d) == 0 else str(int(d)) for d in board)


# --- checking and solving --------------------------------------------------------------------

def _unit_is_permutation(boards: torch.Tensor, unit: torch.Tensor) -> torch.Tensor:
    """(N, 9) bool: does unit u (a row, column or box) of each board hold each digit 1..9 once?"""
    one_hot = torch.nn.functional.one_hot(boards.long(), 10)[..., 1:]          # (N, 81, 9)
    counts = torch.zeros(len(boards), 9, 9, dtype=torch.long, device=boards.device)
    counts.index_add_(1, unit.to(boards.device), one_hot)
    return (counts == 1).all(dim=2)


def is_solved(puzzles: torch.Tensor, boards: torch.Tensor) -> torch.Tensor:
    """(N,) bool: is each board a complete valid grid that keeps its puzzle's givens?

    This is the exact-board metric: it accepts any valid completion, not only the stored solution."""
    keeps_givens = ((puzzles == 0) | (puzzles == boards)).all(dim=1)
    units_ok = torch.stack([_unit_is_permutation(boards, unit).all(dim=1) for unit in UNITS.values()])
    return keeps_givens & units_ok.all(dim=0)


def check_solutions(puzzles: torch.Tensor, solutions: torch.Tensor, names: Sequence[str]) -> None:
    """Raise a ValueError naming the first record whose solution breaks a rule, and the rule."""
    bad = (~is_solved(puzzles, solutions)).nonzero().flatten()
    if len(bad) == 0:
        return
    first = int(bad[0])
    puzzle, solution = puzzles[first:first + 1], solutions[first:first + 1]
    problems = [f"{kind} {u + 1}" for kind, unit in UNITS.items()
                for u in (~_unit_is_permutation(solution, unit)[0]).nonzero().flatten().tolist()]
    changed = ((puzzle != 0) & (puzzle != solution))[0].nonzero().flatten().tolist()
    problems += [f"given at row {c // 9 + 1}, column {c % 9 + 1} changed" for c in changed]
    raise ValueError(f"sudoku {names[first]}: solution {board_string(solutions[first])} is invalid "
                     f"({len(bad)} invalid record(s) in all); first problems: {', '.join(problems[:5])}")


@dataclass(frozen=True)
class SolverResult:
    solutions: list[tuple[int, ...]]
    """Up to `max_solutions` complete boards."""
    guesses: int
    """Branches tried at cells with two or more candidates: the classical solver's search effort."""


def solve(puzzle: Sequence[int], max_solutions: int = 2) -> SolverResult:
    """Exact backtracking solver with constraint propagation, the classical reference.

    Every step fills the blank with the fewest candidates (a forced cell first, so naked singles
    propagate before any guess) and backtracks on a cell with none. It stops after
    `max_solutions`; the default 2 is what a uniqueness check needs."""
    cells = [int(d) for d in puzzle]
    rows, columns, boxes = [0] * 9, [0] * 9, [0] * 9
    for index, digit in enumerate(cells):
        if digit:
            bit = 1 << digit
            r, c, b = index // 9, index % 9, int(CELL_BOX[index])
            if (rows[r] | columns[c] | boxes[b]) & bit:
                return SolverResult([], 0)
            rows[r] |= bit
            columns[c] |= bit
            boxes[b] |= bit
    boxes_of = CELL_BOX.tolist()
    solutions: list[tuple[int, ...]] = []
    guesses = 0

    def search() -> None:
        nonlocal guesses
        best, best_candidates, best_count = -1, 0, 10
        for index, digit in enumerate(cells):
            if digit:
                continue
            candidates = 0b1111111110 & ~(rows[index // 9] | columns[index % 9] | boxes[boxes_of[index]])
            count = candidates.bit_count()
            if count < best_count:
                best, best_candidates, best_count = index, candidates, count
                if count <= 1:
                    break
        if best < 0:
            solutions.append(tuple(cells))
            return
        r, c, b = best // 9, best % 9, boxes_of[best]
        for digit in range(1, 10):
            bit = 1 << digit
            if not best_candidates & bit:
                continue
            if best_count > 1:
                guesses += 1
            cells[best] = digit
            rows[r] |= bit
            columns[c] |= bit
            boxes[b] |= bit
            search()
            rows[r] &= ~bit
            columns[c] &= ~bit
            boxes[b] &= ~bit
            cells[best] = 0
            if len(solutions) >= max_solutions:
                return

    search()
    return SolverResult(solutions, guesses)


# --- generation and cache --------------------------------------------------------------------

def _qqwing_binary() -> str:
    binary = shutil.which("qqwing")
    if binary is None:
        raise RuntimeError(f"the sudoku generator needs the program `qqwing` on PATH; {QQWING_INSTALL_HINT}")
    return binary


def qqwing_version() -> str:
    return subprocess.run([_qqwing_binary(), "--version"], capture_output=True, text=True, check=True).stdout.strip()


def parse_qqwing_csv(text: str) -> SudokuSet:
    """Parse `qqwing --generate N --csv --solution --stats` output and check every solution.

    qqwing writes a header line and one line per puzzle, each ending in a comma:
    Puzzle,Solution,Givens,...,Guesses,Backtracks,Difficulty, (Difficulty capitalised, e.g. Expert)."""
    reader = csv.DictReader(io.StringIO(text))
    required = {"Puzzle", "Solution", "Difficulty"}
    if reader.fieldnames is None or not required <= set(reader.fieldnames):
        raise ValueError(f"qqwing output has no header with columns {sorted(required)} "
                         f"(run it with --csv --solution --stats); it starts {text[:200]!r}")
    puzzles, solutions, difficulty, names = [], [], [], []
    for line, row in enumerate(reader, start=2):
        name = f"qqwing line {line}"
        puzzles.append(parse_board(row["Puzzle"], f"{name}, puzzle"))
        solutions.append(parse_board(row["Solution"], f"{name}, solution", blanks_allowed=False))
        difficulty_class = row["Difficulty"].lower()
        if difficulty_class not in DIFFICULTIES:
            raise ValueError(f"sudoku {name}: unknown difficulty {row['Difficulty']!r}; "
                             f"valid: {', '.join(DIFFICULTIES)} (any case)")
        difficulty.append(DIFFICULTIES.index(difficulty_class))
        names.append(name)
    result = SudokuSet(torch.tensor(puzzles, dtype=torch.uint8).reshape(-1, CELLS),
                       torch.tensor(solutions, dtype=torch.uint8).reshape(-1, CELLS),
                       torch.tensor(difficulty, dtype=torch.long))
    check_solutions(result.puzzles, result.solutions, names)
    return result


def _run_qqwing(difficulty: str, count: int) -> str:
    command = [_qqwing_binary(), "--generate", str(count), "--difficulty", difficulty,
               "--csv", "--solution", "--stats"]
    completed = subprocess.run(command, capture_output=True, text=True)
    if completed.returncode != 0:
        raise RuntimeError(f"`{' '.join(command)}` failed with exit code {completed.returncode}: "
                           f"{(completed.stdout + completed.stderr).strip()[:500]}")
    return completed.stdout


def generate(difficulty: str, count: int) -> SudokuSet:
    """`count` distinct qqwing puzzles of one difficulty class, every solution checked.

    Not seeded (see the module docstring): draw every split of a difficulty from one call."""
    choice("sudoku difficulty", difficulty, DIFFICULTIES)
    if count < 1:
        raise ValueError(f"sudoku puzzle count must be at least 1, got {count}")
    # DEVIATION: [sudoku-qqwing] puzzles come from the qqwing generator, not the paper's dataset.
    kept: list[SudokuSet] = []
    seen: set[bytes] = set()
    requested = count
    while len(seen) < count:
        part = parse_qqwing_csv(_run_qqwing(difficulty, requested))
        if not (part.difficulty == DIFFICULTIES.index(difficulty)).all():
            raise RuntimeError(f"qqwing returned puzzles of another class than {difficulty!r}")
        fresh = []
        for row, puzzle in enumerate(part.puzzles):
            key = puzzle.numpy().tobytes()
            if key not in seen:
                seen.add(key)
                fresh.append(row)
        kept.append(part.subset(torch.tensor(fresh, dtype=torch.long)))
        # A second run in the same wall-clock second repeats the first one's stream, so ask for
        # more than before: the extra puzzles are new.
        requested *= 2
    return concatenate(kept).subset(slice(0, count))


def _csv_text(puzzles: SudokuSet) -> str:
    lines = ["puzzle,solution,difficulty"]
    lines += [f"{board_string(p)},{board_string(s)},{DIFFICULTIES[int(d)]}"
              for p, s, d in zip(puzzles.puzzles, puzzles.solutions, puzzles.difficulty)]
    return "\n".join(lines) + "\n"


def _read_cached(path: Path, sidecar: Path, settings: dict) -> SudokuSet:
    """The cached set; a ValueError says why the cache cannot be used."""
    recorded = json.loads(sidecar.read_text())
    content = path.read_bytes()
    if recorded.get("settings") != settings:
        raise ValueError(f"settings {recorded.get('settings')} differ from the requested {settings}")
    if hashlib.sha256(content).hexdigest() != recorded.get("sha256"):
        raise ValueError("sha256 of the file differs from the sidecar's")
    rows = list(csv.DictReader(io.StringIO(gzip.decompress(content).decode())))
    if len(rows) != settings["count"]:
        raise ValueError(f"holds {len(rows)} puzzles, expected {settings['count']}")
    names = [f"{path.name} line {line}" for line in range(2, len(rows) + 2)]
    cached = SudokuSet(
        torch.tensor([parse_board(r["puzzle"], n) for r, n in zip(rows, names)], dtype=torch.uint8),
        torch.tensor([parse_board(r["solution"], n, blanks_allowed=False) for r, n in zip(rows, names)],
                     dtype=torch.uint8),
        torch.tensor([DIFFICULTIES.index(r["difficulty"]) for r in rows]))
    check_solutions(cached.puzzles, cached.solutions, names)
    return cached


def _cache_files(cache_dir: Path, difficulty: str, count: int) -> tuple[Path, Path, dict]:
    """The set's compressed CSV, its sidecar, and the generation settings the sidecar records."""
    stem = f"sudoku_qqwing_{difficulty}_{count}"
    return (cache_dir / f"{stem}.csv.gz", cache_dir / f"{stem}.json",
            {"generator": "qqwing", "difficulty": difficulty, "count": count})


def load_or_generate(cache_dir: str | os.PathLike, difficulty: str, count: int) -> SudokuSet:
    """`count` puzzles of `difficulty`, read from `cache_dir`; generated by qqwing and cached there only where the
    folder holds no such set yet.

    The cache is a gzip-compressed CSV (puzzle, solution, difficulty; about 70 bytes a puzzle)
    plus a JSON sidecar holding the sha256 of the compressed file and the generation settings.
    A set under the committed data/ is first checked against data/MANIFEST.json, so it must be listed there (and is
    never generated into data/ here). A set that is corrupt, mismatched or half there is an error that says how to
    restore it, never regenerated: regenerated puzzles differ from the lost ones, so only an explicit
    `generate_set` writes over a set."""
    choice("sudoku difficulty", difficulty, DIFFICULTIES)
    cache_dir = Path(cache_dir)
    path, sidecar, settings = _cache_files(cache_dir, difficulty, count)
    verify_if_committed(path)
    verify_if_committed(sidecar)
    if not (path.exists() or sidecar.exists()):
        return generate_set(cache_dir, difficulty, count)
    try:
        return _read_cached(path, sidecar, settings)
    except (OSError, ValueError, KeyError, UnicodeDecodeError) as error:
        raise ValueError(f"sudoku set {path} is unusable ({type(error).__name__}: {error}); it was not regenerated, "
                         f"since new puzzles would differ from these: restore it and its sidecar {sidecar.name}, "
                         f"or replace the set on purpose with repro.data.sudoku.generate_set({str(cache_dir)!r}, "
                         f"{difficulty!r}, {count})") from None


def generate_set(cache_dir: str | os.PathLike, difficulty: str, count: int) -> SudokuSet:
    """Generate `count` new puzzles of `difficulty` with qqwing and write them (atomically) into `cache_dir`, over any
    set of that size there: the one explicit way to (re)generate a set. For the committed sets, `make sudoku-sets`
    does this and rewrites data/MANIFEST.json."""
    choice("sudoku difficulty", difficulty, DIFFICULTIES)
    cache_dir = Path(cache_dir)
    path, sidecar, settings = _cache_files(cache_dir, difficulty, count)
    started = time.time()
    puzzles = generate(difficulty, count)
    # mtime 0: the same puzzles always compress to the same bytes, so the checksum names the content.
    content = gzip.compress(_csv_text(puzzles).encode(), compresslevel=9, mtime=0)
    provenance = {"settings": settings, "sha256": hashlib.sha256(content).hexdigest(),
                  "qqwing_version": qqwing_version(), "generated_unix_time": int(started),
                  "seeding": "qqwing seeds itself with the wall-clock second it starts in; not reproducible"}
    cache_dir.mkdir(parents=True, exist_ok=True)
    write_atomically(path, content)
    write_atomically(sidecar, json.dumps(provenance, indent=2).encode())
    return puzzles


# --- difficulty by givens, augmentation, model encoding ----------------------------------------

def reveal_givens(puzzles: SudokuSet, extra: int | torch.Tensor, generator: torch.Generator) -> SudokuSet:
    """Copy `extra` blank cells per puzzle (an int, or an (N,) tensor) from the solution.

    The cells are uniformly random among the blanks (all of them when fewer are left). To bring
    every puzzle to g givens, use `with_givens`."""
    blank = puzzles.puzzles == 0
    keys = torch.rand(blank.shape, generator=generator).masked_fill(~blank, 2.0)
    ranks = keys.argsort(dim=1).argsort(dim=1)
    extra = torch.as_tensor(extra).reshape(-1, 1)
    revealed = blank & (ranks < extra)
    return SudokuSet(torch.where(revealed, puzzles.solutions, puzzles.puzzles), puzzles.solutions,
                     puzzles.difficulty)


def with_givens(puzzles: SudokuSet, givens: int | torch.Tensor, generator: torch.Generator) -> SudokuSet:
    """Each puzzle brought to `givens` givens (an int, or an (N,) tensor) by revealing random cells
    of its solution; a puzzle that already has as many keeps its own."""
    return reveal_givens(puzzles, (torch.as_tensor(givens) - puzzles.givens()).clamp(min=0), generator)


def _line_permutation(count: int, generator: torch.Generator) -> torch.Tensor:
    """(count, 9) orders of the 9 rows: bands shuffled, then rows shuffled within each band."""
    bands = torch.rand(count, 3, generator=generator).argsort(dim=1)
    within = torch.rand(count, 3, 3, generator=generator).argsort(dim=2)
    return (bands[:, :, None] * 3 + within).reshape(count, 9)


def augment(puzzles: SudokuSet, generator: torch.Generator) -> SudokuSet:
    """Each puzzle under its own random symmetry of the sudoku rules, applied identically to the
    puzzle and its solution: digit relabelling, band and stack permutations, row (column)
    permutations within bands (stacks), and a transpose with probability 1/2."""
    count = len(puzzles)
    rows = _line_permutation(count, generator)
    columns = _line_permutation(count, generator)
    source = rows[:, :, None] * 9 + columns[:, None, :]                            # (N, 9, 9)
    transpose = torch.rand(count, generator=generator) < 0.5
    source = torch.where(transpose[:, None, None], source.transpose(1, 2), source).reshape(count, CELLS)
    relabel = torch.cat([torch.zeros(count, 1, dtype=torch.long),
                         torch.rand(count, 9, generator=generator).argsort(dim=1) + 1], dim=1)

    def move(boards: torch.Tensor) -> torch.Tensor:
        return relabel.gather(1, boards.long().gather(1, source)).to(boards.dtype)

    return SudokuSet(move(puzzles.puzzles), move(puzzles.solutions), puzzles.difficulty)


@dataclass(frozen=True)
class SudokuBatch:
    """Model tensors; pair the 81 tokens with `CELL_ROW`, `CELL_COLUMN`, `CELL_BOX` embeddings."""

    tokens: torch.Tensor
    """(N, 81) int64 in {0 = blank, 1..9}."""
    targets: torch.Tensor
    """(N, 81) int64 digit - 1, in 0..8, for a 9-way head per cell."""
    blank: torch.Tensor
    """(N, 81) bool: the cells to fill (for a blanks-only loss and per-cell accuracy)."""

    def blank_targets(self) -> torch.Tensor:
        """`targets` with `repro.losses.IGNORE` on the givens: a token loss over these is a loss on
        the blank cells only (copying a given teaches nothing)."""
        return self.targets.masked_fill(~self.blank, IGNORE)

    def to(self, device: torch.device) -> "SudokuBatch":
        return SudokuBatch(self.tokens.to(device), self.targets.to(device), self.blank.to(device))


def encode(puzzles: SudokuSet) -> SudokuBatch:
    return SudokuBatch(puzzles.puzzles.long(), puzzles.solutions.long() - 1, puzzles.puzzles == 0)


@dataclass
class SudokuStream:
    """Fresh training batches (tokens, blank-cell targets), a pure function of (seed, step).

    Each batch draws puzzles with replacement from `pool`, brings each to a number of givens drawn
    uniformly from the inclusive range `givens` (a puzzle with more keeps its own), and applies to
    each its own random symmetry (`augment`), so no two batches repeat a board."""

    pool: SudokuSet
    givens: tuple[int, int]
    batch_size: int
    seed: int

    def __post_init__(self):
        low, high = self.givens
        if not 0 <= low <= high <= CELLS:
            raise ValueError(f"givens must be a range (low, high) with 0 <= low <= high <= {CELLS}, got {self.givens}")
        if self.batch_size < 1 or len(self.pool) == 0:
            raise ValueError(f"need batch_size >= 1 and a non-empty pool, got {self.batch_size}, {len(self.pool)}")

    def batch_at(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        generator = rng("sudoku-train", self.seed, step)
        index = torch.randint(len(self.pool), (self.batch_size,), generator=generator)
        givens = torch.randint(self.givens[0], self.givens[1] + 1, (self.batch_size,), generator=generator)
        batch = encode(augment(with_givens(self.pool.subset(index), givens, generator), generator))
        return batch.tokens, batch.blank_targets()
