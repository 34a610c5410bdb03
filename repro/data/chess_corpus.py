"""The mined chess corpus, read back verified: the puzzles `repro.data.chess_mining` mines from
Stockfish self-play, and its calibration table on real Lichess puzzles.

The corpus (`CORPUS_DIR`, committed under data/chess_mined/, so reading it needs no Stockfish) is
xz-compressed CSV shards of `PUZZLE_COLUMNS` and `calibration.csv.xz` of `CALIBRATION_COLUMNS`,
listed with their sha256 and row counts in `settings.json` (`MANIFEST`). Every file is checked
against that record before it is read (and, for the committed corpus, against data/MANIFEST.json, which also
pins `settings.json` itself), and every puzzle is checked to be a legal position with a
legal move (`load_mined`, `load_calibration`). How the puzzles are mined, and what the
calibration measures, is told in `repro.data.chess_mining`.
"""

import csv
import hashlib
import io
import json
import lzma
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from repro import ROOT
from repro.data.chess import ChessPuzzles, encode_puzzles, legal_move, parse_fen
from repro.data.files import verify_if_committed
from repro.seeding import rng

CORPUS_DIR = ROOT / "data" / "chess_mined"
MANIFEST = "settings.json"
CALIBRATION_FILE = "calibration.csv.xz"
PUZZLE_COLUMNS = ("PuzzleId", "FEN", "Move", "Depth", "Mate", "WinMargin", "Game", "Ply")
CALIBRATION_COLUMNS = ("PuzzleId", "Rating", "Depth", "Mate", "Move", "Solution", "Solved", "Puzzle", "WinMargin")
MISSING_CORPUS_HINT = "mine it with `make mine-chess` (hours on 2 cores; needs Stockfish)"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _read_manifest(directory: Path) -> dict:
    path = directory / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"no mined chess corpus: expected {path} (the corpus lives in "
                                f"data/chess_mined/ at the repository root); {MISSING_CORPUS_HINT}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"mined chess corpus: {path} is not valid JSON ({error}); restore it from git or "
                         f"delete the folder and {MISSING_CORPUS_HINT}") from None


def _read_checked_manifest(directory: Path) -> dict:
    """The manifest, for reading the corpus: checked against data/MANIFEST.json where the corpus is the committed
    one. (The miner, which rewrites it, reads it with `_read_manifest`.)"""
    if (directory / MANIFEST).is_file():
        verify_if_committed(directory / MANIFEST)
    return _read_manifest(directory)


def _read_verified(directory: Path, record: dict, columns: Sequence[str]) -> list[dict[str, str]]:
    """The rows of a corpus file after checking its checksum, header and row count."""
    path = directory / record["file"]
    if not path.is_file():
        raise FileNotFoundError(f"mined chess corpus: {path} is listed in {MANIFEST} but missing; "
                                f"{MISSING_CORPUS_HINT} (it mines only what is missing)")
    verify_if_committed(path)
    if _sha256(path) != record["sha256"]:
        raise ValueError(f"mined chess corpus: {path} does not match its sha256 in {MANIFEST} (corrupt or "
                         f"changed); `make mine-chess` mines it again")
    reader = csv.DictReader(io.StringIO(lzma.decompress(path.read_bytes()).decode()))
    if tuple(reader.fieldnames or ()) != tuple(columns):
        raise ValueError(f"mined chess corpus: {path} has columns {reader.fieldnames}, expected {list(columns)}")
    rows = list(reader)
    if len(rows) != record["rows"]:
        raise ValueError(f"mined chess corpus: {path} holds {len(rows)} rows, {MANIFEST} records {record['rows']}")
    return rows


def _count(value: str, record: str, column: str, blank_allowed: bool = False) -> int | None:
    """A positive integer cell (or None for an allowed blank), else an error naming the record."""
    if blank_allowed and value == "":
        return None
    if not value.isdigit() or int(value) < 1:
        valid = "a positive integer or blank" if blank_allowed else "a positive integer"
        raise ValueError(f"chess puzzle {record}: {column} {value!r} is not {valid}")
    return int(value)


def parse_mined_rows(rows: Sequence[dict[str, str]], sources: Sequence[str]) -> ChessPuzzles:
    """Encode mined puzzle rows (`PUZZLE_COLUMNS`), checking each: a legal position, a legal move, a
    positive depth and a blank or positive mate distance. `sources` name the rows in errors
    (e.g. 'shard_00003.csv.xz line 12')."""
    ids, boards, moves, depths, mates = [], [], [], [], []
    for row, source in zip(rows, sources, strict=True):
        record = f"{row.get('PuzzleId')} ({source})"
        board = parse_fen(row["FEN"], record)
        moves.append(legal_move(board, row["Move"], record, "solution move"))
        depths.append(_count(row["Depth"], record, "Depth"))
        mates.append(_count(row["Mate"], record, "Mate", blank_allowed=True) or 0)
        ids.append(row["PuzzleId"])
        boards.append(board)
    return replace(encode_puzzles(ids, boards, moves, None), depths=torch.tensor(depths, dtype=torch.long),
                   mates=torch.tensor(mates, dtype=torch.long))


def load_mined(directory: Path = CORPUS_DIR) -> ChessPuzzles:
    """Every mined puzzle, verified (checksums, legal positions and moves), with `depths` and `mates`.

    A position mined in two shards is kept once, from the first shard: shards are mined apart, so
    mining drops only the repeats within a shard."""
    manifest = _read_checked_manifest(directory)
    if not manifest["shards"]:
        raise ValueError(f"mined chess corpus {directory} lists no shards; {MISSING_CORPUS_HINT}")
    rows, sources, seen = [], [], set()
    for _, record in sorted(manifest["shards"].items()):
        for line, row in enumerate(_read_verified(directory, record, PUZZLE_COLUMNS), start=2):
            # The first four FEN fields are the EPD (pieces, side to move, castling, en passant),
            # the key mining dedupes by.
            position = " ".join(row["FEN"].split()[:4])
            if position not in seen:
                seen.add(position)
                rows.append(row)
                sources.append(f"{record['file']} line {line}")
    return parse_mined_rows(rows, sources)


def split_order(mined: ChessPuzzles) -> list[int]:
    """The seeded order in which notebook 04 draws from the mined corpus: each test bucket takes its first puzzles in
    it, the training pool the rest (`repro.experiments.chess.split`, and the long-mate analysis,
    `repro.data.chess_mates`, which must find the same test puzzles)."""
    return torch.randperm(len(mined), generator=rng("chess-split")).tolist()


@dataclass(frozen=True)
class Calibration:
    """The difficulty measure on real Lichess puzzles (see `calibration_rows`), one entry per puzzle."""

    ids: list[str]
    ratings: torch.Tensor
    """(N,) int64 Lichess rating."""
    depths: torch.Tensor
    """(N,) int64 depth from which Stockfish found and kept its move."""
    mates: torch.Tensor
    """(N,) int64 mate distance of Stockfish's move, 0 where it does not mate by force."""
    solved: torch.Tensor
    """(N,) bool: Stockfish's move solves the puzzle (the classical reference's solve rate)."""
    puzzles: torch.Tensor
    """(N,) bool: the position passes the miner's puzzle test."""


def load_calibration(directory: Path = CORPUS_DIR) -> Calibration:
    """The calibration table of the mined corpus, checksum-verified."""
    manifest = _read_checked_manifest(directory)
    if manifest.get("calibration") is None:
        raise FileNotFoundError(f"mined chess corpus {directory} has no {CALIBRATION_FILE}; {MISSING_CORPUS_HINT}")
    rows = _read_verified(directory, manifest["calibration"], CALIBRATION_COLUMNS)

    def column(name: str, dtype: torch.dtype) -> torch.Tensor:
        return torch.tensor([int(row[name] or 0) for row in rows], dtype=dtype)

    return Calibration([row["PuzzleId"] for row in rows], column("Rating", torch.long), column("Depth", torch.long),
                       column("Mate", torch.long), column("Solved", torch.bool), column("Puzzle", torch.bool))
