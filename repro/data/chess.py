"""Chess puzzles (real Lichess puzzles, BIG-bench mate-in-one) in the easy-to-hard-data encoding.

Input: the position to solve as 12 binary 8x8 planes, seen from the side to move. Channels 0-5
are the mover's king, queen, bishop, knight, rook, pawn; 6-11 the opponent's, same order. Plane
row = rank, column = file (a..h). When Black moves the board is mirrored vertically (rank r ->
7 - r, files unchanged, colours swapped, `chess.Board.mirror`), so row 0 is always the mover's back
rank and the mover always plays up the board, as in deep-thinking's FlippedChessPuzzleDataset.
Target: the solver's first move in the same frame, as from- and to-square indices 0..63
(index = 8 * row + column), or as a 64-long map with ones at the from- and to-squares of every
correct move (`correct_moves`: the solution, every shortest mate up to mate in two by exact search, and for longer
mates the answers of Stockfish's committed analysis, `repro.data.chess_mates`).

What the planes do not carry: castling rights, the en-passant square and the move counters, as in
easy-to-hard-data; the promotion piece is not part of the target (only 'from' and 'to').

Sources (read from the directory named by REPRO_DATA_DIR, see `repro.data.files`; never copied here):
- Lichess puzzle CSVs (PuzzleId, FEN, Moves, Rating, Themes). FEN is the position before the
  opponent's move; Moves[0] is that move, Moves[1] the solver's first move, which is the target.
- BIG-bench checkmate_in_one: records {pgn, mate}. The game in PGN ends with the side to move
  able to mate, so the position after the PGN is the puzzle itself (no opponent move to apply)
  and `mate` (SAN) is the target. These have no rating.

Board logic is python-chess throughout.
"""

import csv
import io
import json
import lzma
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from types import MappingProxyType

import chess
import numpy as np
import torch

from repro.data.files import data_file

LICHESS_FILES = ("lichess/lichess_puzzles.csv.xz", "lichess/torre_puzzles.csv.xz")
"""Lichess samples under REPRO_DATA_DIR. When a PuzzleId is in both, the first file's record is
kept: it is the more recent snapshot, so its rating is the more current one."""
LICHESS_COLUMNS = ("PuzzleId", "FEN", "Moves", "Rating")
MATE_IN_ONE_FILE = "chess/checkmate_in_one.json.xz"

PIECE_ORDER = (chess.KING, chess.QUEEN, chess.BISHOP, chess.KNIGHT, chess.ROOK, chess.PAWN)
"""Plane order within each side's six channels."""

RATING_EDGES = (800, 1200, 1600, 2000, 2400)
"""Fixed 400-point Lichess rating bands: below 800, 800-1199, ..., 2400 and above."""


@dataclass(frozen=True)
class ChessPuzzles:
    """Encoded puzzles, one row per puzzle, plus what is needed to trace each back to its source."""

    ids: list[str]
    """PuzzleId for Lichess; 'checkmate_in_one:<index in the file>' for BIG-bench."""
    fens: list[str]
    """The position to solve (after the opponent's move), in the original orientation."""
    solutions: list[str]
    """The solver's first move, UCI, in the original orientation."""
    boards: torch.Tensor
    """(N, 12, 8, 8) uint8 planes in the mover's frame."""
    from_squares: torch.Tensor
    """(N,) int64 0..63, mover's frame."""
    to_squares: torch.Tensor
    """(N,) int64 0..63, mover's frame."""
    white_to_move: torch.Tensor
    """(N,) bool: False where the planes and squares are mirrored."""
    ratings: torch.Tensor | None
    """(N,) int64 Lichess puzzle rating (the difficulty); None for a source without ratings."""
    depths: torch.Tensor | None = None
    """(N,) int64 search depth from which Stockfish found and kept the solution (the difficulty of
    puzzles mined from self-play, `repro.data.chess_mining`); None for other sources."""
    mates: torch.Tensor | None = None
    """(N,) int64 mate distance in moves where the solution mates by force, 0 where it does not:
    Stockfish's for mined puzzles, the length of the line for Lichess puzzles whose line ends in
    mate; None for other sources."""

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, index) -> "ChessPuzzles":
        """The puzzles at `index` (a slice, an index tensor or a boolean mask)."""
        rows = torch.arange(len(self))[index].reshape(-1).tolist()

        def pick(column):
            if column is None:
                return None
            return column[rows] if isinstance(column, torch.Tensor) else [column[i] for i in rows]

        return ChessPuzzles(**{field.name: pick(getattr(self, field.name)) for field in fields(self)})

    def target_map(self) -> torch.Tensor:
        """(N, 64) float: 1 at the from- and to-square of every correct move (`correct_pairs`), the
        deep-thinking target extended to puzzles with several answers."""
        target = torch.zeros(len(self), 64)
        for row, pairs in enumerate(correct_pairs(self)):
            target[row, [square for pair in pairs for square in pair]] = 1
        return target


def concatenate(parts: Sequence[ChessPuzzles]) -> ChessPuzzles:
    """The puzzles of `parts` in order, as one set: without ratings (not every source has them), with mate distances
    where every part has them."""
    tensors = ("boards", "from_squares", "to_squares", "white_to_move")
    mates = None if any(part.mates is None for part in parts) else torch.cat([part.mates for part in parts])
    return ChessPuzzles(**{f: (torch.cat([getattr(t, f) for t in parts]) if f in tensors
                               else sum((list(getattr(t, f)) for t in parts), []))
                           for f in ("ids", "fens", "solutions") + tensors}, ratings=None, mates=mates)


# --- encoding ------------------------------------------------------------------------------------

def mover_frame(board: chess.Board) -> chess.Board:
    """The position with the side to move as White playing up the board (mirrored if Black moves)."""
    return board.mirror() if board.turn == chess.BLACK else board.copy()


def mover_move(board: chess.Board, move: chess.Move) -> chess.Move:
    """`move` (legal in `board`) expressed in `mover_frame(board)`."""
    if board.turn == chess.WHITE:
        return move
    return chess.Move(chess.square_mirror(move.from_square), chess.square_mirror(move.to_square), move.promotion)


def encode_boards(boards: Sequence[chess.Board]) -> torch.Tensor:
    """(N, 12, 8, 8) uint8 planes of each position in its mover's frame."""
    bitboards = np.array([[frame.pieces_mask(piece, colour) for colour in (chess.WHITE, chess.BLACK)
                           for piece in PIECE_ORDER] for frame in map(mover_frame, boards)],
                         dtype=np.uint64).reshape(len(boards), 12, 1)
    bits = (bitboards >> np.arange(64, dtype=np.uint64)) & np.uint64(1)
    return torch.from_numpy(bits.astype(np.uint8).reshape(len(boards), 12, 8, 8))


def planes_to_board(planes: torch.Tensor) -> chess.Board:
    """The position a (12, 8, 8) encoding shows: the mover is White and to move; castling rights
    and en passant are absent because the planes do not hold them."""
    if tuple(planes.shape) != (12, 8, 8):
        raise ValueError(f"chess planes must have shape (12, 8, 8), got {tuple(planes.shape)}")
    board = chess.Board(None)
    for channel, square in planes.reshape(12, 64).nonzero().tolist():
        if board.piece_at(square) is not None:
            raise ValueError(f"chess planes put two pieces on {chess.square_name(square)}")
        colour = chess.WHITE if channel < 6 else chess.BLACK
        board.set_piece_at(square, chess.Piece(PIECE_ORDER[channel % 6], colour))
    return board


def encode_puzzles(ids: list[str], boards: list[chess.Board], solutions: list[chess.Move],
                   ratings: list[int] | None) -> ChessPuzzles:
    """Puzzles from their positions to solve and solution moves (legal, original orientation)."""
    moves = [mover_move(board, move) for board, move in zip(boards, solutions)]
    return ChessPuzzles(
        ids, [board.fen() for board in boards], [move.uci() for move in solutions], encode_boards(boards),
        torch.tensor([m.from_square for m in moves], dtype=torch.long),
        torch.tensor([m.to_square for m in moves], dtype=torch.long),
        torch.tensor([board.turn == chess.WHITE for board in boards]),
        None if ratings is None else torch.tensor(ratings, dtype=torch.long))


# --- loading -------------------------------------------------------------------------------------

def parse_fen(fen: str, puzzle: str) -> chess.Board:
    """The legal position `fen`, or a ValueError naming `puzzle` and what is wrong with it."""
    try:
        board = chess.Board(fen)
    except ValueError as error:
        raise ValueError(f"chess puzzle {puzzle}: malformed FEN {fen!r} ({error})") from None
    if not board.is_valid():
        raise ValueError(f"chess puzzle {puzzle}: FEN {fen!r} is not a legal position ({board.status()!r})")
    return board


def legal_move(board: chess.Board, uci: str, puzzle: str, what: str) -> chess.Move:
    """The move `uci` in `board`, or a ValueError naming `puzzle` and `what` move it should be."""
    try:
        move = chess.Move.from_uci(uci)
    except ValueError:
        raise ValueError(f"chess puzzle {puzzle}: {what} {uci!r} is not a UCI move (e.g. 'e2e4', 'e7e8q')") from None
    if move not in board.legal_moves:
        raise ValueError(f"chess puzzle {puzzle}: {what} {uci} is illegal in {board.fen()}")
    return move


def parse_lichess_rows(rows: Sequence[dict[str, str]]) -> ChessPuzzles:
    """Encode Lichess CSV rows (PuzzleId, FEN, Moves, Rating): apply Moves[0], target Moves[1]."""
    ids, boards, solutions, ratings, mates = [], [], [], [], []
    for row in rows:
        puzzle = row.get("PuzzleId")
        missing = [column for column in LICHESS_COLUMNS if row.get(column) is None]
        if missing:
            raise ValueError(f"chess puzzle {puzzle}: row lacks {missing}; expected {list(LICHESS_COLUMNS)}")
        board = parse_fen(row["FEN"], puzzle)
        moves = row["Moves"].split()
        if len(moves) < 2:
            raise ValueError(f"chess puzzle {puzzle}: Moves must hold the opponent's move and the solution, "
                             f"got {row['Moves']!r}")
        board.push(legal_move(board, moves[0], puzzle, "opponent's move"))
        solutions.append(legal_move(board, moves[1], puzzle, "solution move"))
        mates.append(_line_mate(board, moves[1:], puzzle))
        try:
            ratings.append(int(row["Rating"]))
        except ValueError:
            raise ValueError(f"chess puzzle {puzzle}: Rating {row['Rating']!r} is not an integer") from None
        ids.append(puzzle)
        boards.append(board)
    return replace(encode_puzzles(ids, boards, solutions, ratings), mates=torch.tensor(mates, dtype=torch.long))


def _line_mate(board: chess.Board, line: Sequence[str], puzzle: str) -> int:
    """The solver's moves in `line` (UCI, solver first, every move legal) where it ends in checkmate, else 0."""
    played = board.copy(stack=False)
    for uci in line:
        played.push(legal_move(played, uci, puzzle, "move of the solution line"))
    return (len(line) + 1) // 2 if played.is_checkmate() else 0


def load_lichess(files: Sequence[str] = LICHESS_FILES) -> ChessPuzzles:
    """Every Lichess puzzle in `files` (paths under REPRO_DATA_DIR), deduplicated by PuzzleId.

    A PuzzleId seen twice keeps its first record; its FEN and Moves must agree in both files
    (ratings may differ: the samples are different snapshots)."""
    chosen: dict[str, dict[str, str]] = {}
    for relative in files:
        path = data_file(relative)
        reader = csv.DictReader(io.StringIO(lzma.open(path, "rt").read()))
        missing = [column for column in LICHESS_COLUMNS if column not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"chess data {path}: missing column(s) {missing}; expected {list(LICHESS_COLUMNS)}")
        for row in reader:
            kept = chosen.setdefault(row["PuzzleId"], row)
            if (kept["FEN"], kept["Moves"]) != (row["FEN"], row["Moves"]):
                raise ValueError(f"chess puzzle {row['PuzzleId']}: {path} gives another position or line "
                                 f"than an earlier file ({kept['FEN']} {kept['Moves']})")
    # DEVIATION: [chess-lichess-sample] ~7k real Lichess puzzles instead of the ~1.5M-puzzle snapshot.
    return parse_lichess_rows(list(chosen.values()))


_MOVE_NUMBER = re.compile(r"\d+\.(\.\.)?")


def load_mate_in_one(limit: int | None = None) -> ChessPuzzles:
    """BIG-bench mate-in-one positions (the first `limit` distinct ones), each checked to mate.

    A record whose position (EPD: pieces, side to move, castling, en passant) repeats an earlier
    one is dropped (the file holds a repeated PGN and a transposition); ids keep the index in the file."""
    records = json.loads(lzma.open(data_file(MATE_IN_ONE_FILE), "rt").read())
    ids, boards, solutions, seen = [], [], [], set()
    for index, record in enumerate(records):
        if limit is not None and len(ids) >= limit:
            break
        puzzle = f"checkmate_in_one:{index}"
        board = chess.Board()
        try:
            for token in record["pgn"].split():
                if not _MOVE_NUMBER.fullmatch(token):
                    board.push_san(token)
            mate = board.parse_san(record["mate"])
        except ValueError as error:
            raise ValueError(f"chess puzzle {puzzle}: cannot replay its PGN and mate ({error})") from None
        if not _mates(board, mate):
            raise ValueError(f"chess puzzle {puzzle}: {record['mate']} does not mate in {board.fen()}")
        if board.epd() in seen:
            continue
        seen.add(board.epd())
        ids.append(puzzle)
        boards.append(board)
        solutions.append(mate)
    return encode_puzzles(ids, boards, solutions, None)


# --- difficulty buckets and scoring --------------------------------------------------------------

def quantile_edges(ratings: torch.Tensor, buckets: int) -> tuple[int, ...]:
    """Rating edges that split `ratings` into `buckets` groups of (nearly) equal size."""
    levels = torch.linspace(0, 1, buckets + 1)[1:-1]
    return tuple(int(edge) for edge in torch.quantile(ratings.double(), levels.double()).round())


def rating_buckets(puzzles: ChessPuzzles, edges: Sequence[int] = RATING_EDGES) -> torch.Tensor:
    """(N,) bucket index: 0 below edges[0], i for edges[i-1] <= rating < edges[i], len(edges) above.

    Train on the low buckets and test on each higher one for the easy-to-hard protocol."""
    # DEVIATION: [chess-rating-buckets] test sets are rating buckets, not index windows of the
    # rating-sorted 1.5M snapshot ([600K, 700K) and above), which our sample is far too small for.
    if puzzles.ratings is None:
        raise ValueError("these chess puzzles have no ratings (e.g. mate-in-one); bucket Lichess puzzles")
    return torch.bucketize(puzzles.ratings, torch.tensor(edges, dtype=torch.long), right=True)


def bucket_labels(edges: Sequence[int] = RATING_EDGES) -> list[str]:
    """Readable names of the buckets `rating_buckets` returns, e.g. ['<800', '800-1199', ..., '>=2400']."""
    return ([f"<{edges[0]}"] + [f"{low}-{high - 1}" for low, high in zip(edges, edges[1:])]
            + [f">={edges[-1]}"])


def mates_in_one(board: chess.Board) -> list[chess.Move]:
    """Every legal move of `board` that checkmates at once."""
    return [move for move in board.legal_moves if board.gives_check(move) and _mates(board, move)]


def forces_mate_in_two(board: chess.Board, move: chess.Move) -> bool:
    """Does `move` (legal in `board`) mate at once or leave every reply a mate in one? Exact: the
    mating ply only needs checking moves, so it is a brute force over ~35 x 30 x (checks)."""
    board.push(move)
    try:
        if board.is_checkmate():
            return True
        replies = list(board.legal_moves)   # none and not mate: stalemate, no win
        for reply in replies:
            board.push(reply)
            answered = any(board.gives_check(m) and _mates(board, m) for m in board.legal_moves)
            board.pop()
            if not answered:
                return False
        return bool(replies)
    finally:
        board.pop()


def correct_moves(board: chess.Board, solution: chess.Move,
                  long_mate: Sequence[str] | None = None) -> list[chess.Move]:
    """Every move a solver may answer `board` with: the solution and every shortest forced mate.

    Where a mate in one exists, every mate in one (Lichess and BIG-bench accept any mating move); where none does and
    the solution forces mate in two, every move that forces mate in two (exact search, ~10 ms a position). A longer
    mate is answered by `long_mate`, the moves (UCI) that Stockfish's analysis of the position finds mating soonest, and
    the solution (`repro.data.chess_mates`: an exact mate-in-3 search costs ~35x more per position); without them, by
    the solution alone."""
    # DEVIATION: [chess-every-correct-move] every shortest mate is accepted: exact up to mate in 2, the engine's beyond.
    mates = mates_in_one(board)
    if mates:
        return list(dict.fromkeys([solution, *mates]))
    if forces_mate_in_two(board, solution):
        return [move for move in board.legal_moves if forces_mate_in_two(board, move)]
    if long_mate is not None:
        return list(dict.fromkeys([*(chess.Move.from_uci(move) for move in long_mate), solution]))
    return [solution]


def correct_pairs(puzzles: ChessPuzzles, long_mates: Mapping[str, Sequence[str]] = MappingProxyType({})
                  ) -> list[list[tuple[int, int]]]:
    """Per puzzle, the distinct (from, to) squares of its `correct_moves` in the mover's frame (a promotion's piece is
    not part of the move, as in the target); `long_mates` holds the engine's answers to longer mates by FEN."""
    pairs = []
    for fen, uci in zip(puzzles.fens, puzzles.solutions):
        board = chess.Board(fen)
        moves = (mover_move(board, move) for move in correct_moves(board, chess.Move.from_uci(uci), long_mates.get(fen)))
        pairs.append(list(dict.fromkeys((move.from_square, move.to_square) for move in moves)))
    return pairs


def is_correct(puzzles: ChessPuzzles, from_squares: torch.Tensor, to_squares: torch.Tensor) -> torch.Tensor:
    """(N,) bool: is the predicted move (mover's frame) one of the puzzle's `correct_moves` (a longer mate: its solution
    only; the miner's calibration on Lichess, whose puzzles have one winning move)?"""
    return torch.tensor([(int(a), int(b)) in pairs
                         for a, b, pairs in zip(from_squares, to_squares, correct_pairs(puzzles), strict=True)],
                        dtype=torch.bool)


def _mates(board: chess.Board, move: chess.Move) -> bool:
    board.push(move)
    mates = board.is_checkmate()
    board.pop()
    return mates
