import gzip
import json
import shutil

import pytest
import torch

from repro.data.sudoku import (CELL_BOX, CELL_COLUMN, CELL_ROW, DIFFICULTIES, SudokuSet, SudokuStream, augment,
                               board_string, check_solutions, encode, generate, generate_set, is_solved,
                               load_or_generate, parse_board, parse_qqwing_csv, reveal_givens, solve, with_givens)
from repro.losses import IGNORE
from repro.seeding import rng

needs_qqwing = pytest.mark.skipif(shutil.which("qqwing") is None,
                                  reason="qqwing is not installed (`apt-get install qqwing`, or `make setup`)")

# A qqwing 'Expert' puzzle with its solution, in qqwing's own CSV output format.
QQWING_CSV = (
    "Puzzle,Solution,Givens,Singles,Hidden Singles,Naked Pairs,Hidden Pairs,Pointing Pairs/Triples,"
    "Box/Line Intersections,Guesses,Backtracks,Difficulty\n"
    ".6..79......6....9......8...3..2..5.9.....3..5.7.3.1.6.9.7.......3.1..7...8..35..,"
    "865179234342685719719342865136927458984561327527438196291754683453816972678293541,"
    "24,39,14,2,0,3,1,4,6,Expert,\n")
PUZZLE, SOLUTION = QQWING_CSV.splitlines()[1].split(",")[:2]


@pytest.fixture(scope="module")
def easy_puzzles() -> SudokuSet:
    if shutil.which("qqwing") is None:
        pytest.skip("qqwing is not installed (`apt-get install qqwing`, or `make setup`)")
    return generate("easy", 40)


def test_parses_qqwing_csv_and_its_solution_passes_our_checker():
    parsed = parse_qqwing_csv(QQWING_CSV)
    assert len(parsed) == 1 and DIFFICULTIES[int(parsed.difficulty[0])] == "expert"
    assert board_string(parsed.puzzles[0]) == PUZZLE and board_string(parsed.solutions[0]) == SOLUTION
    assert parsed.givens().tolist() == [24]
    assert is_solved(parsed.puzzles, parsed.solutions).all()


def test_solver_finds_the_unique_solution_and_detects_ambiguity():
    result = solve(parse_board(PUZZLE, "test"))
    assert result.solutions == [tuple(parse_board(SOLUTION, "test"))]
    assert result.guesses > 0  # an expert puzzle needs search
    # qqwing keeps a given only when removing it breaks uniqueness, so each given is needed.
    one_given_less = parse_board(PUZZLE, "test")
    one_given_less[one_given_less.index(next(d for d in one_given_less if d))] = 0
    assert len(solve(one_given_less).solutions) == 2
    assert len(solve([0] * 81, max_solutions=5).solutions) == 5
    assert solve([1, 1] + [0] * 79).solutions == []


def test_checker_rejects_corrupted_boards():
    puzzle = torch.tensor([parse_board(PUZZLE, "test")], dtype=torch.uint8)
    solution = torch.tensor([parse_board(SOLUTION, "test")], dtype=torch.uint8)
    swapped_cells = solution.clone()
    swapped_cells[0, [0, 1]] = swapped_cells[0, [1, 0]]  # rows still hold 1..9, columns do not
    relabelled = torch.where(solution == 8, 0, solution)  # a digit missing everywhere
    given_changed = solution.clone()
    given = int((puzzle[0] != 0).nonzero()[0])
    given_changed[0, given] = given_changed[0, given] % 9 + 1
    for corrupted, problem in ((swapped_cells, "column 1"), (relabelled, "row 1"), (given_changed, "given at")):
        assert not is_solved(puzzle, corrupted).any()
        with pytest.raises(ValueError, match=f"sudoku record-7: .*{problem}"):
            check_solutions(puzzle, corrupted, ["record-7"])
    # Swapping two whole bands keeps every rule but changes givens.
    bands_swapped = solution.reshape(1, 3, 27)[:, [1, 0, 2]].reshape(1, 81)
    assert is_solved(torch.zeros_like(puzzle), bands_swapped).all() and not is_solved(puzzle, bands_swapped).any()


@pytest.mark.parametrize("text, message", [
    (PUZZLE[:-1], "expected 81 characters"),
    (PUZZLE[:-1] + "x", r"invalid character 'x' at row 9, column 9; valid: '1'-'9'"),
])
def test_malformed_boards_name_the_record_and_what_is_valid(text, message):
    with pytest.raises(ValueError, match=rf"sudoku line 3: {message}"):
        parse_board(text, "line 3")
    with pytest.raises(ValueError, match="a solution has no blanks"):
        parse_board(PUZZLE, "line 3", blanks_allowed=False)
    with pytest.raises(ValueError, match="qqwing line 2, solution"):
        parse_qqwing_csv(QQWING_CSV.replace(SOLUTION, SOLUTION[:-1] + "."))
    with pytest.raises(ValueError, match="unknown difficulty 'Fiendish'"):
        parse_qqwing_csv(QQWING_CSV.replace("Expert", "Fiendish"))


def test_missing_qqwing_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("PATH", "")
    with pytest.raises(RuntimeError, match="needs the program `qqwing`.*apt-get install qqwing"):
        generate("easy", 1)
    with pytest.raises(ValueError, match="unknown sudoku difficulty 'hard'; valid choices: 'simple'"):
        generate("hard", 1)


@needs_qqwing
def test_generated_puzzles_are_distinct_valid_and_unique(easy_puzzles):
    assert len(easy_puzzles) == 40
    assert (easy_puzzles.difficulty == DIFFICULTIES.index("easy")).all()
    assert len({board_string(p) for p in easy_puzzles.puzzles}) == 40
    assert is_solved(easy_puzzles.puzzles, easy_puzzles.solutions).all()
    for puzzle, solution in zip(easy_puzzles.puzzles[:5], easy_puzzles.solutions[:5]):
        assert solve(puzzle.tolist()).solutions == [tuple(solution.tolist())]


@needs_qqwing
def test_augmentation_preserves_validity_and_maps_puzzle_and_solution_together(easy_puzzles):
    augmented = augment(easy_puzzles, rng("test-augment"))
    assert is_solved(augmented.puzzles, augmented.solutions).all()
    assert torch.equal(augmented.givens(), easy_puzzles.givens())
    assert not torch.equal(augmented.puzzles, easy_puzzles.puzzles)
    # Same transform on both: every given still agrees with its solution, and a puzzle's solution
    # is still the solver's unique completion of it.
    for puzzle, solution in zip(augmented.puzzles[:3], augmented.solutions[:3]):
        assert solve(puzzle.tolist()).solutions == [tuple(solution.tolist())]
    assert torch.equal(augment(easy_puzzles, rng("test-augment")).puzzles, augmented.puzzles)
    assert not torch.equal(augment(easy_puzzles, rng("other")).puzzles, augmented.puzzles)
    # Over many draws, the transpose is used about half the time and every digit moves.
    many = augment(easy_puzzles.subset(torch.zeros(400, dtype=torch.long)), rng("many"))
    assert len({board_string(p) for p in many.puzzles}) == 400
    assert (many.solutions[:, 0] != easy_puzzles.solutions[0, 0]).float().mean() > 0.8


@needs_qqwing
def test_revealed_givens_come_from_the_solution_and_hit_the_requested_count(easy_puzzles):
    more = reveal_givens(easy_puzzles, 10, rng("test-reveal"))
    assert torch.equal(more.givens(), easy_puzzles.givens() + 10)
    assert is_solved(more.puzzles, more.solutions).all()
    kept = easy_puzzles.puzzles != 0
    assert torch.equal(more.puzzles[kept], easy_puzzles.puzzles[kept])
    to_forty = with_givens(easy_puzzles, 40, rng("test-reveal"))
    assert (to_forty.givens() == 40).all() and is_solved(to_forty.puzzles, to_forty.solutions).all()
    # A puzzle never loses givens: asking for fewer than it has keeps it as it is.
    assert torch.equal(with_givens(easy_puzzles, 17, rng("x")).puzzles, easy_puzzles.puzzles)
    per_puzzle = torch.arange(len(easy_puzzles)) + 40
    assert torch.equal(with_givens(easy_puzzles, per_puzzle, rng("x")).givens(), per_puzzle)
    assert torch.equal(reveal_givens(easy_puzzles, 81, rng("x")).puzzles, easy_puzzles.solutions)


@needs_qqwing
def test_encoding_for_the_model(easy_puzzles):
    batch = encode(easy_puzzles)
    assert batch.tokens.dtype == torch.long and batch.tokens.max() <= 9
    assert batch.targets.min() >= 0 and batch.targets.max() <= 8
    assert torch.equal(batch.blank, batch.tokens == 0)
    assert torch.equal(batch.targets[~batch.blank] + 1, batch.tokens[~batch.blank])
    # Cell 40 is the centre: row 4, column 4, box 4; cell 80 is in box 8.
    assert (CELL_ROW[40], CELL_COLUMN[40], CELL_BOX[40], CELL_BOX[80]) == (4, 4, 4, 8)
    assert torch.bincount(CELL_BOX).tolist() == [9] * 9
    blank_only = batch.blank_targets()
    assert torch.equal(blank_only[batch.blank], batch.targets[batch.blank]) and (blank_only[~batch.blank] == IGNORE).all()


@needs_qqwing
def test_training_stream_is_seeded_valid_augmented_and_in_the_givens_range(easy_puzzles):
    stream = SudokuStream(easy_puzzles, givens=(40, 50), batch_size=64, seed=3)
    tokens, targets = stream.batch_at(5)
    assert tokens.shape == targets.shape == (64, 81)
    givens = (tokens != 0).sum(dim=1)
    assert givens.min() >= 40 and givens.max() <= 50 and len(givens.unique()) > 3
    solutions = torch.where(targets == IGNORE, tokens - 1, targets) + 1
    assert is_solved(tokens, solutions).all()
    assert torch.equal(stream.batch_at(5)[0], tokens) and not torch.equal(stream.batch_at(6)[0], tokens)
    assert not torch.equal(SudokuStream(easy_puzzles, (40, 50), 64, seed=4).batch_at(5)[0], tokens)
    # Augmented: the boards are not the pool's own boards.
    pool = {board_string(s) for s in easy_puzzles.solutions}
    assert not any(board_string(s) in pool for s in solutions)
    with pytest.raises(ValueError, match="givens must be a range"):
        SudokuStream(easy_puzzles, givens=(50, 40), batch_size=8, seed=0)


@needs_qqwing
def test_cache_is_reused_and_a_corrupt_one_is_an_error_never_regenerated(tmp_path):
    first = load_or_generate(tmp_path, "easy", 5)
    csv_file, sidecar = tmp_path / "sudoku_qqwing_easy_5.csv.gz", tmp_path / "sudoku_qqwing_easy_5.json"
    assert json.loads(sidecar.read_text())["settings"] == {"generator": "qqwing", "difficulty": "easy", "count": 5}
    assert gzip.decompress(csv_file.read_bytes()).decode().startswith("puzzle,solution,difficulty\n")
    assert torch.equal(load_or_generate(tmp_path, "easy", 5).puzzles, first.puzzles)
    corrupt = gzip.compress(gzip.decompress(csv_file.read_bytes()).replace(b"1", b"2", 1))
    csv_file.write_bytes(corrupt)
    with pytest.raises(ValueError, match=r"sha256 .* not regenerated.*generate_set\("):
        load_or_generate(tmp_path, "easy", 5)
    assert csv_file.read_bytes() == corrupt
    sidecar.unlink()
    with pytest.raises(ValueError, match="unusable.*restore it and its sidecar"):
        load_or_generate(tmp_path, "easy", 5)
    assert sorted(path.name for path in tmp_path.iterdir()) == [csv_file.name]
    regenerated = generate_set(tmp_path, "easy", 5)
    assert torch.equal(load_or_generate(tmp_path, "easy", 5).puzzles, regenerated.puzzles)
