"""The committed report reads on a fresh clone: every link and image resolves, and a browser renders it."""

import base64
import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from repro import ROOT
from repro.experiments import parity
from repro.reproduce import REPORT_DIR, build_report, study_notebooks
from repro.results import where

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class References(HTMLParser):
    """Every href and src of a page, and every id it defines."""

    def __init__(self):
        super().__init__()
        self.links, self.images, self.ids = [], [], set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])
        if tag == "img" and attrs.get("src"):
            self.images.append(attrs["src"])


def references(page: Path) -> References:
    parser = References()
    parser.feed(page.read_text())
    return parser


def test_the_report_has_a_page_per_notebook():
    assert (REPORT_DIR / "index.html").exists(), "report/index.html is missing: run `make report`"
    missing = [stem for stem in study_notebooks() if not (REPORT_DIR / f"{stem}.html").exists()]
    assert not missing, f"no rendered page for {missing}: run `make reproduce NB=...` for them"


@pytest.mark.parametrize("page", ["index"] + study_notebooks())
def test_every_local_link_and_image_of_a_report_page_resolves(page):
    path = REPORT_DIR / f"{page}.html"
    found = references(path)
    for link in found.links:
        if link.startswith(("http://", "https://", "mailto:")):
            continue
        target, _, anchor = link.partition("#")
        target_path = path if not target else (path.parent / target)
        assert target_path.exists(), f"{path.name}: dead link {link!r}"
        if anchor:
            assert anchor in references(target_path).ids, f"{path.name}: link {link!r} names no element"
    for image in found.images:
        if image.startswith("data:image/png;base64,"):
            assert base64.b64decode(image.split(",", 1)[1])[:8] == PNG_SIGNATURE, f"{path.name}: a broken PNG"
        else:
            assert not image.startswith(("http://", "https://")), f"{path.name}: an image from the network"
            assert (path.parent / image).exists(), f"{path.name}: missing image {image!r}"


@pytest.mark.skipif(shutil.which("chromium") is None,
                    reason="no chromium here: `make setup` installs Debian's chromium where apt works")
def test_headless_chromium_renders_the_report_and_saves_a_screenshot():
    shot = ROOT / "build" / "report.png"
    shot.parent.mkdir(exist_ok=True)
    page = (REPORT_DIR / "index.html").resolve().as_uri()
    browser = ["chromium", "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    dom = subprocess.run(browser + ["--dump-dom", page], capture_output=True, text=True, timeout=120, check=True).stdout
    assert "Claims" in dom and "Deviations log" in dom and "deciding quantities" in dom
    subprocess.run(browser + ["--window-size=1400,2400", f"--screenshot={shot}", page], capture_output=True,
                   timeout=120, check=True)
    assert shot.read_bytes()[:8] == PNG_SIGNATURE


def test_a_claim_row_links_its_notebook_source_and_the_library_functions_that_measured_it(tmp_path):
    """A result carrying `pipeline` gets one link per function to its source file; one written before the field
    existed (the committed results) gets none, and no error. The links are relative to the report's folder, so they
    resolve wherever the report is written (here: outside the repository)."""
    results = tmp_path / "results"
    results.mkdir()
    document = json.loads((ROOT / "results" / "01_parity.json").read_text())
    pipeline = [where(parity.per_seed), where(parity.baselines_budget)]
    odd = {"function": "repro.experiments.parity.<locals>.inner", "source": pipeline[0]["source"], "line": 1}
    for entry in document["claims"]:
        entry["pipeline"] = [*pipeline, odd]
    (results / "01_parity.json").write_text(json.dumps(document))
    older = json.loads((ROOT / "results" / "02_prefix_sums.json").read_text())
    for entry in older["claims"]:
        entry.pop("pipeline", None)
    (results / "02_prefix_sums.json").write_text(json.dumps(older))
    build_report(tmp_path / "build", tmp_path / "report",
                 {"RESULTS_DIR": str(results), "FIGURES_DIR": str(tmp_path / "figures")})
    page = tmp_path / "report" / "index.html"
    links = references(page).links
    at = {link: (page.parent / link).resolve() for link in links if not link.startswith(("http", "#"))}
    library = [link for link in links if link in at and at[link].suffix == ".py"]
    assert ROOT / "repro" / "experiments" / "parity.py" in {at[link] for link in library}
    assert all(at[link].is_file() for link in library), library
    for stem in ("01_parity", "02_prefix_sums"):
        assert ROOT / "notebooks" / f"{stem}.ipynb" in at.values()
    # Two claims of 01_parity, three functions each; the older result file names none.
    assert len(library) == 3 * len(document["claims"])
    text = page.read_text()
    assert "repro.experiments.parity.per_seed" in text and "&lt;locals&gt;" in text and "<locals>" not in text


def test_the_report_marks_a_stale_result_and_a_failed_notebook_with_the_age_of_what_it_shows(tmp_path):
    """One result whose recorded module hash no longer matches the tree, one whose last run failed."""
    results = tmp_path / "results"
    results.mkdir()
    for stem in ("01_parity", "10_scaling"):
        document = json.loads((ROOT / "results" / f"{stem}.json").read_text())
        document["provenance"]["inputs"] = {"code": {"repro/nn.py": "0" * 64}, "data": {}}
        (results / f"{stem}.json").write_text(json.dumps(document))
    status = tmp_path / "status.json"
    status.write_text(json.dumps({"10_scaling": {"ok": False, "profile": "cpu", "wall_seconds": 3.0,
                                                 "error": "10_scaling failed in cell 4: ValueError: bad input\nmore"}}))
    build_report(tmp_path / "build", tmp_path / "report", {"RESULTS_DIR": str(results), "STATUS_FILE": str(status),
                                                           "FIGURES_DIR": str(tmp_path / "figures")})
    text = (tmp_path / "report" / "index.html").read_text()
    assert "stale: 1 input(s) changed since it was written: repro/nn.py" in text
    assert "the last run of 10_scaling failed (10_scaling failed in cell 4: ValueError: bad input); shown instead" in text
    assert "the last run of 01_parity failed" not in text
