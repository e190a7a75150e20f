"""libdeclip batch: a nested folder with a bad file, through real local Ray, killed midway and
resumed; outputs byte-identical to libdeclip declip's."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from libdeclip.batch import MANIFEST_NAME, Job, is_done, load_manifest, plan_jobs
from tests.conftest import DEMO_PHOTO

pytest.importorskip("ray", reason="libdeclip batch needs Ray (pip install 'libdeclip[ray]')")

CLI = [sys.executable, "-m", "libdeclip"]


def _library(root: Path, demo_rgb: np.ndarray) -> list[str]:
    """Nine small real crops of the demo photo in nested folders, and a file that is no image."""
    names = []
    for i in range(9):
        folder = root / ("" if i < 3 else "trip" if i < 6 else "trip/day 2")
        folder.mkdir(parents=True, exist_ok=True)
        y, x = 40 * (i % 4), 60 * (i // 4)
        PILImage.fromarray(demo_rgb[y : y + 240, x : x + 320]).save(folder / f"photo {i}.png")
        names.append((folder / f"photo {i}.png").relative_to(root).as_posix())
    (root / "trip" / "broken.jpg").write_bytes(b"\xff\xd8 not really a JPEG")
    (root / ".hidden").mkdir()
    PILImage.fromarray(demo_rgb[:64, :64]).save(root / ".hidden" / "skip.png")
    return names


def _batch(src: Path, dst: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen([*CLI, "batch", str(src), str(dst), "--local", "--cpus", "2", "-q", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def _entries(dst: Path) -> list[dict[str, object]]:
    lines = (dst / MANIFEST_NAME).read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def test_plan_mirrors_the_tree_and_skips_hidden_and_the_output(tmp_path: Path, demo_rgb: np.ndarray) -> None:
    names = _library(tmp_path / "src", demo_rgb)
    jobs = plan_jobs(tmp_path / "src", tmp_path / "src" / "out")
    assert [j.rel for j in jobs] == sorted([*names, "trip/broken.jpg"])
    assert all(j.out == (tmp_path / "src" / "out" / j.rel).resolve() for j in jobs)
    listed = plan_jobs(tmp_path / "src", tmp_path / "dst", ["trip/photo 3.png", "", "photo 0.png"])
    assert [j.rel for j in listed] == ["photo 0.png", "trip/photo 3.png"]


def test_is_done_checks_source_and_output(tmp_path: Path) -> None:
    src, out = tmp_path / "a.png", tmp_path / "b.png"
    src.write_bytes(b"source")
    out.write_bytes(b"output!")
    job = Job(src, "a.png", out)
    from libdeclip.batch import sha256_file

    st = src.stat()
    entry = {"src_size": st.st_size, "src_mtime_ns": st.st_mtime_ns, "src_sha256": sha256_file(src),
             "out_size": 7, "out_sha256": sha256_file(out)}
    assert is_done(job, entry) and is_done(job, entry, verify=True)
    assert not is_done(job, None)
    out.write_bytes(b"OUTPUT!")  # same size, other bytes: only --verify sees it
    assert is_done(job, entry) and not is_done(job, entry, verify=True)
    os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # touched, same bytes: still done
    assert is_done(job, entry)
    src.write_bytes(b"edited")  # changed source: to be done again
    assert not is_done(job, entry)
    out.unlink()
    assert not is_done(job, dict(entry, src_size=6, src_sha256=sha256_file(src)))


def test_batch_killed_midway_resumes_without_losing_or_redoing(tmp_path: Path, demo_rgb: np.ndarray) -> None:
    src, dst = tmp_path / "library", tmp_path / "declipped"
    names = _library(src, demo_rgb)
    proc = _batch(src, dst, "--workers", "1")
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:  # kill the whole run (driver, Ray and workers) after 3 photos
        if (dst / MANIFEST_NAME).exists() and sum(e["status"] == "done" for e in _entries(dst)) >= 3:
            break
        if proc.poll() is not None:
            pytest.fail(f"the run ended before it could be killed: {proc.communicate()}")
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    landed = {rel for rel, e in load_manifest(dst).items() if (dst / rel).exists()}
    assert 3 <= len(landed) < len(names)

    resumed = _batch(src, dst)
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 1, err  # the broken file failed (again); nothing else did
    assert "failed: trip/broken.jpg" in err and "already done" in err

    assert not list(dst.rglob(".*.part*"))  # what the killed workers were writing was swept
    entries = _entries(dst)
    runs = sorted({str(e["run"]) for e in entries})
    assert len(runs) == 2
    done_in_second = {str(e["rel"]) for e in entries if e["status"] == "done" and e["run"] == runs[1]}
    assert not (done_in_second & landed), "a file finished before the kill was done again"
    assert {str(e["rel"]) for e in entries if e["status"] == "done"} == set(names)  # none lost
    failed = [e for e in entries if e["status"] == "failed"]
    assert {str(e["rel"]) for e in failed} == {"trip/broken.jpg"}
    assert all("broken.jpg" in str(e["error"]) for e in failed)

    # Every output is byte for byte what libdeclip declip writes.
    for rel in names:
        reference = tmp_path / "reference" / rel
        reference.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([*CLI, "declip", str(src / rel), "-o", str(reference), "-q"], check=True)
        assert (dst / rel).read_bytes() == reference.read_bytes(), rel

    # A third run has nothing left but the broken file.
    again = _batch(src, dst, "--verify")
    _, err = again.communicate(timeout=300)
    assert "0 declipped, 9 already done, 1 failed of 10" in err


def test_batch_errors_are_one_line(tmp_path: Path) -> None:
    proc = subprocess.run([*CLI, "batch", str(tmp_path / "missing"), str(tmp_path / "out"), "-q"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'missing'}: not a folder"]
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = subprocess.run([*CLI, "batch", str(empty), str(tmp_path / "out"), "-q"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "no photos found" in proc.stderr
    assert DEMO_PHOTO.exists()
