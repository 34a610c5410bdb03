"""Reproduction study of three adaptive-computation transformer papers.

Reusable layers: `repro.models.adatape` (tape bank + adaptive tape reading),
`repro.models.universal` (Universal Transformer with ACT halting),
`repro.models.transformer` (the encoder baseline). Every adaptive model returns
`(output, aux)`, where `aux` reports the compute it spent.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
"""Repository root of an editable install: notebooks, results/ and figures/ live here."""
