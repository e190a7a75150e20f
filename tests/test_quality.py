from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from benchmarks.quality import main, make_case, metrics
from tests.conftest import SHARED_DATA

EVAL = SHARED_DATA / "eval"
needs_eval = pytest.mark.skipif(not (EVAL / "kodak24").is_dir(), reason="../shared/data/eval is absent")


@needs_eval
def test_protocol_is_seeded_and_quantised() -> None:
    path = sorted((EVAL / "kodak24").glob("*.png"))[0]
    a, b = make_case(path), make_case(path)
    assert (a.over, a.under) == (b.over, b.under)
    assert 175 <= a.over <= 255 and 1 <= a.under <= 80
    np.testing.assert_array_equal(np.rint(a.clipped * 255) / 255, a.clipped)  # 8-bit levels
    identity = metrics(a, a.clipped)
    perfect = metrics(a, (a.truth - a.under) / (a.over - a.under))
    assert perfect["psnr"] > 100 and perfect["region_ciede2000"] < 1e-3
    assert identity["region_psnr"] < 60 and identity["region_ciede2000"] > 0


@needs_eval
def test_harness_writes_its_reports(tmp_path: Path) -> None:
    assert main(["--limit", "2", "--out-dir", str(tmp_path), "--grid", "1"]) == 0
    rows = list(csv.DictReader(open(tmp_path / "quality.csv")))
    assert len(rows) == 2 * 2 * 2  # sets x photos x methods
    assert {r["method"] for r in rows} == {"identity", "declipnet"}
    assert "| kodak24 | declipnet | 2 |" in (tmp_path / "quality.md").read_text()
    assert (tmp_path / "quality_grid.png").stat().st_size > 10_000
