"""The papers' claims: the single source for the claims table of the report.

Every result file and the report refer to a claim by its id here, so the paper's
number is written down once, next to an honest account of where it came from. For
all three papers only front matter, abstracts, blog-derived summaries and code
could be read (see `papers/*.md`); no table of any paper body was accessible, so
most `paper_value`s are qualitative or "not found", and a number that comes only
from a secondary summary says so in `source`.

Spine ids are S1..S7 (SELF), A1..A4 (AdaTape) and L1..L4 (Looped). A notebook may
test a finer claim such as `A1.len64`; it resolves to its spine claim `A1`.
"""

from dataclasses import dataclass

from repro.config import choice

PAPERS = {
    "SELF": (
        "Mrinal Mathur, Mike Doan, Barak A. Pearlmutter, Sergey Plis. "
        "Change of Thought: Adaptive Test-Time Computation. arXiv:2507.13569 (2025); "
        "ICLR 2026 submission centred on Fixed-Point Self-Attention (OpenReview 86PhVA7veh)."
    ),
    "AdaTape": (
        "Fuzhao Xue, Valerii Likhosherstov, Anurag Arnab, Neil Houlsby, Mostafa Dehghani, Yang You. "
        "Adaptive Computation with Elastic Input Sequence. ICML 2023, PMLR 202:38971-38988; "
        "arXiv:2301.13195."
    ),
    "Looped": "Asher Labovich. Stability and Generalization in Looped Transformers. arXiv:2604.15259 (2026).",
}

VERDICTS = ("reproduced", "partially", "not reproduced", "not attempted")


@dataclass(frozen=True)
class Claim:
    """One claim of a paper, as reported, with the provenance of its number."""

    id: str  # spine id, as in DESIGN.md's claims table
    paper: str  # a key of PAPERS
    section: str  # where the paper states it, and whether that place could be read
    statement: str  # the claim in one sentence, as reported
    paper_value: str  # the reported number(s), or "qualitative" / "not found"
    source: str  # provenance of paper_value, in the paper notes' legend
    notebook: str  # stem of the notebook that tests it


CLAIMS = (
    Claim(
        id="S1",
        paper="SELF",
        section="ICLR 2026 abstract (names GLUE, BERT-Base, ELECTRA-Base); Table: GLUE (not retrievable)",
        statement="On GLUE, SELF beats BERT-Base and ELECTRA-Base with no new parameters.",
        paper_value="GLUE avg 88.4 (+3.4 over ELECTRA-Base)",
        source=(
            "secondary summary (unverified), as cited in DESIGN.md; the paper notes found no GLUE number "
            "in any reachable source"
        ),
        notebook="05_glue",
    ),
    Claim(
        id="S2",
        paper="SELF",
        section="ICLR 2026 abstract (names SQuAD v2.0, 'significant improvement'); Table: SQuAD (not retrievable)",
        statement="On SQuAD, SELF reaches F1 95.2 (v1.1) and 88.7 (v2.0), above BERT-Base and ELECTRA-Base.",
        paper_value="F1 95.2 (v1.1), 88.7 (v2.0)",
        source=(
            "secondary summary (unverified), as cited in DESIGN.md; the paper notes found no SQuAD number "
            "in any reachable source"
        ),
        notebook="06_squad",
    ),
    Claim(
        id="S3",
        paper="SELF",
        section="ICLR 2026 abstract (names ViT-B/16); Table: ImageNet-1K (not retrievable)",
        statement=(
            "SELF-ViT has higher ImageNet-1K top-1 and top-5 accuracy than ViT and EfficientNet-B7 "
            "with fewer parameters."
        ),
        paper_value="not found",
        source=(
            "secondary summary (unverified); the paper notes find ViT-B/16 named in the ICLR abstract "
            "but EfficientNet named in no reachable source"
        ),
        notebook="07_image_classification",
    ),
    Claim(
        id="S4",
        paper="SELF",
        section="Table: image restoration (not retrievable)",
        statement="SELF improves image restoration: denoising, super-resolution and deblurring.",
        paper_value="not found",
        source=(
            "secondary summary (unverified), as cited in DESIGN.md; the paper notes found image restoration "
            "mentioned in no reachable source"
        ),
        notebook="08_image_restoration",
    ),
    Claim(
        id="S5",
        paper="SELF",
        section="ICLR 2026 abstract (gains on vision-language models); Tables: VQA, retrieval (not retrievable)",
        statement=(
            "SELF-VLTransformer is above CLIP and FLAVA on VQA and on image-text retrieval "
            "(MS COCO, Flickr30k)."
        ),
        paper_value="not found",
        source=(
            "secondary summary (unverified); the ICLR abstract only reports gains on vision-language models, "
            "and the paper notes found CLIP, FLAVA and the datasets named in no reachable source"
        ),
        notebook="09_vqa_retrieval",
    ),
    Claim(
        id="S6",
        paper="SELF",
        section="ICLR 2026 abstract (cost); sequence-length scaling: secondary summary only",
        statement=(
            "SELF takes a median of 3-6 refinement steps at about 1.6x the GFLOPs and 1.3-1.4x the latency "
            "of an equivalent BERT-Base, and its inference time grows sublinearly with sequence length."
        ),
        paper_value="median 3-6 steps; ~1.6x GFLOPs; ~1.3-1.4x latency; sublinear scaling: not found (no number)",
        source=(
            "paper (ICLR 2026 abstract) for steps, GFLOPs and latency; secondary summary (unverified) "
            "for sublinear scaling, which the paper notes could not locate"
        ),
        notebook="10_scaling",
    ),
    Claim(
        id="S7",
        paper="SELF",
        section="abstract (arXiv v1 and ICLR 2026)",
        statement="SELF gives up to 20% accuracy gain on encoder-style benchmarks with no added parameters.",
        paper_value="up to 20% (the ICLR TL;DR says 25%)",
        source="paper (arXiv v1 and ICLR 2026 abstracts; OpenReview TL;DR)",
        notebook="05_glue",
    ),
    Claim(
        id="A1",
        paper="AdaTape",
        section="blog (Google Research, Aug 2023), via blog-derived summaries; parity figure (not accessible)",
        statement=(
            "On parity, a standard Transformer and a Universal Transformer fail to solve the task "
            "satisfactorily, while AdaTape outperforms them."
        ),
        paper_value="not found",
        source="secondary summary (blog-derived, unverified); no parity accuracy located anywhere",
        notebook="01_parity",
    ),
    Claim(
        id="A2",
        paper="AdaTape",
        section=(
            "blog (Google Research, Aug 2023), via blog-derived summaries; "
            "Table: image classification (not retrievable)"
        ),
        statement=(
            "On ImageNet-1K, AdaTape has a better quality/cost trade-off than adaptive baselines "
            "(A-ViT, UT-style ViTs), and larger AdaTape models are faster than smaller baselines."
        ),
        paper_value="not found",
        source=(
            "secondary summary (blog-derived, unverified) for the trade-off; 'larger AdaTape models faster' "
            "is in DESIGN.md only, not in the paper notes; top-1, throughput and parameter counts not found"
        ),
        notebook="07_image_classification",
    ),
    Claim(
        id="A3",
        paper="AdaTape",
        section="blog (Google Research, Aug 2023); tape-selection heatmap figure (not retrieved)",
        statement="The input-driven tape bank selects central image patches more often than peripheral ones.",
        paper_value="qualitative",
        source="secondary summary (unverified; the paper notes flag this often-repeated finding as unverified)",
        notebook="07_image_classification",
    ),
    Claim(
        id="A4",
        paper="AdaTape",
        section="blog (Google Research, Aug 2023), via blog-derived summaries; ablation table (not retrieved)",
        statement="A separate FFN for tape tokens gives slightly better quality than one shared with input tokens.",
        paper_value="qualitative ('slightly better')",
        source=(
            "secondary summary (blog-derived, unverified); the official code ships the option disabled "
            "(enc_tt_mlp_dim = 0)"
        ),
        notebook="07_image_classification",
    ),
    Claim(
        id="L1",
        paper="Looped",
        section="arXiv abstract (full text not accessible)",
        statement=(
            "Without recall, a looped transformer has a countable set of fixed points and cannot reach strong "
            "input-dependence in any spectral regime, so it should extrapolate poorly."
        ),
        paper_value="qualitative",
        source=(
            "paper (abstract); the extrapolation consequence is DESIGN.md's reading, not an abstract quote; "
            "per-configuration numbers not found"
        ),
        notebook="02_prefix_sums",
    ),
    Claim(
        id="L2",
        paper="Looped",
        section="arXiv abstract (full text not accessible)",
        statement=(
            "Recall with outer normalization reliably gives reachable fixed points that are locally smooth "
            "in the input, with stable backpropagation through them, and so the best extrapolation."
        ),
        paper_value="qualitative",
        source=(
            "paper (abstract); 'best extrapolation' is DESIGN.md's reading, not an abstract quote; "
            "per-configuration numbers not found"
        ),
        notebook="02_prefix_sums",
    ),
    Claim(
        id="L3",
        paper="Looped",
        section="arXiv abstract (full text not accessible)",
        statement=(
            "Internal recall is competitive with standard recall placement and substantially better on sudoku "
            "once outer normalization is used."
        ),
        paper_value="qualitative",
        source="paper (abstract); where internal recall is injected and the sudoku numbers: not found",
        notebook="03_sudoku",
    ),
    Claim(
        id="L4",
        paper="Looped",
        section="arXiv abstract (full text not accessible)",
        statement=(
            "For single-layer looped transformers on chess, sudoku and prefix sums, downstream accuracy tracks "
            "the framework's stability predictions across tasks and architecture configurations."
        ),
        paper_value="qualitative",
        source="paper (abstract); per-task, per-configuration numbers not found",
        notebook="02_prefix_sums",
    ),
)

_BY_ID = {c.id: c for c in CLAIMS}


def claim(claim_id: str) -> Claim:
    """Look a claim up by id; a finer id such as 'A1.len64' resolves to its spine claim 'A1'.

    An unknown id raises KeyError whose message lists the valid ids, so a typo in a
    notebook fails loudly instead of producing a claims-table row without a paper value.
    """
    spine = claim_id.split(".", 1)[0]
    if spine not in _BY_ID:
        raise KeyError(
            f"unknown claim id {claim_id!r}; valid ids: {', '.join(_BY_ID)} "
            "(a finer id such as 'A1.len64' resolves to its spine id)"
        )
    return _BY_ID[spine]


def verdict_from_checks(passed: int, total: int, partial_from: int = 1) -> str:
    """A verdict rule's outcome: every check passed is 'reproduced', at least `partial_from` is
    'partially', fewer is 'not reproduced'."""
    if not 0 <= passed <= total or not 1 <= partial_from <= total:
        raise ValueError(f"need 0 <= passed <= total and 1 <= partial_from <= total, "
                         f"got passed {passed}, total {total}, partial_from {partial_from}")
    return "reproduced" if passed == total else "partially" if passed >= partial_from else "not reproduced"


def check_verdict(verdict: str) -> str:
    """Return `verdict` if it is one of VERDICTS, so no misspelled verdict reaches the report."""
    choice("verdict", verdict, VERDICTS)
    return verdict
