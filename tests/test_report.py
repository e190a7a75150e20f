"""``libdeclip declip --report``: the static page, checked in real headless Chromium (Debian's
chromium and chromium-driver; skipped without them: ``make chromium``)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pytest
from PIL import Image as PILImage

from benchmarks.report_screenshot import chromium, unavailable, wait_for_images
from libdeclip import clip_mask, read_image
from libdeclip._preview import MAX_PREVIEW_WIDTH
from libdeclip._report import ReportEntry, write_report
from tests.conftest import DEMO_PHOTO, REPO, SHARED_DATA

# a name that breaks naive HTML and URLs: quotes, <, spaces, #, %, non-ASCII
HOSTILE = "it's <\"lamps\"> & ünï #1 50%.png"
SHARED_PHOTO = SHARED_DATA / "clipped" / "hdrcnn" / "img_005.png"
Run = tuple[Path, list[Path], "subprocess.CompletedProcess[str]"]  # folder, inputs, CLI run


def _photos(folder: Path) -> list[Path]:
    folder.mkdir()
    photos = [folder / HOSTILE]
    shutil.copy(DEMO_PHOTO, photos[0])
    if SHARED_PHOTO.is_file():
        photos.append(folder / SHARED_PHOTO.name)
        shutil.copy(SHARED_PHOTO, photos[1])
    bad = folder / "broken.jpg"
    bad.write_bytes(DEMO_PHOTO.read_bytes()[:2000])  # a PNG start under a JPEG name
    return [*photos, bad]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Run:
    tmp = tmp_path_factory.mktemp("report")
    inputs = _photos(tmp / "in")
    proc = subprocess.run(
        [sys.executable, "-m", "libdeclip", "declip", *map(str, inputs), "--out-dir", str(tmp / "out"),
         "--report", str(tmp / "report"), "--jobs", "2", "-q"],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )
    return tmp, inputs, proc


def test_report_files(report: Run) -> None:
    tmp, inputs, proc = report
    assert proc.returncode == 1, proc.stderr  # the broken file
    good = len(inputs) - 1
    assert f"{good} of {len(inputs)} files declipped, 1 failed" in proc.stderr
    page = (tmp / "report" / "index.html").read_text(encoding="utf-8")
    assert "http:" not in page and "https:" not in page  # nothing fetched from anywhere
    assert HOSTILE not in page  # escaped
    images = sorted(p.name for p in (tmp / "report" / "images").iterdir())
    assert len(images) == 3 * good and not [n for n in images if n.endswith(".part")]
    # the mask overlay is opaque exactly where the demo photo is clipped (same size: 640 px)
    mask_png = next((tmp / "report" / "images").glob("000_*_mask.png"))
    with PILImage.open(mask_png) as im:
        alpha = np.asarray(im.convert("RGBA"))[..., 3] > 0
    clipped = clip_mask(read_image(DEMO_PHOTO).pixels)[0].any(axis=2)
    np.testing.assert_array_equal(alpha, clipped)


needs_chromium = pytest.mark.skipif(unavailable() is not None, reason=str(unavailable()))


@needs_chromium
def test_report_in_chromium(report: Run) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    tmp, inputs, _ = report
    with chromium() as driver:
        driver.get((tmp / "report" / "index.html").as_uri())
        wait_for_images(driver)
        good = len(inputs) - 1

        # every picture loaded, from files beside the page
        imgs = driver.find_elements(By.TAG_NAME, "img")
        assert len(imgs) == 3 * good
        for img in imgs:
            loaded = driver.execute_script("return arguments[0].naturalWidth", img)
            assert loaded > 0, img.get_attribute("src")
            assert img.get_attribute("src").startswith((tmp / "report" / "images").as_uri())
        urls = driver.execute_script(
            "return Array.from(document.querySelectorAll('[src], [href]'), e => e.src || e.href)")
        assert len(urls) > len(imgs) and all(u.startswith("file:///") for u in urls)
        assert not driver.find_elements(By.CSS_SELECTOR, "link, script[src], iframe, object")

        sections = driver.find_elements(By.CSS_SELECTOR, "section.photo")
        assert [s.find_element(By.TAG_NAME, "h2").text for s in sections] == [str(p) for p in inputs]
        first = sections[0]

        # the figures
        figures = first.find_element(By.CSS_SELECTOR, ".figures").text
        summary = clip_mask(read_image(DEMO_PHOTO).pixels)[1]
        assert "640 × 480" in figures and "declipnet" in figures
        assert f"{summary.any:.2%}".replace("%", "\u2009%") in figures
        assert f"{summary.high[0]:.2%}".replace("%", "\u2009%") in figures
        seconds = first.find_element(By.CSS_SELECTOR, ".fig-time td").text
        assert seconds.endswith(" s") and float(seconds[:-2]) > 0
        link = first.find_element(By.CSS_SELECTOR, ".fig-output a")
        target = Path(unquote(urlparse(link.get_attribute("href")).path))
        assert target == tmp / "out" / HOSTILE.replace(".png", "_declip.png") and target.is_file()

        # the slider: dragged with the mouse, then moved with the keyboard
        slider = first.find_element(By.CSS_SELECTOR, ".slider")
        after = first.find_element(By.CSS_SELECTOR, "img.after")
        clip = after.value_of_css_property("clip-path")
        assert "50%" in clip
        width = slider.size["width"]
        ActionChains(driver).move_to_element(slider).click_and_hold().move_by_offset(
            -width // 4, 0).release().perform()
        value = float(slider.get_attribute("value"))
        assert 15 < value < 35
        moved = after.value_of_css_property("clip-path")
        assert moved != clip and f"{value:g}%" in moved
        divider = first.find_element(By.CSS_SELECTOR, ".divider").rect
        assert abs(divider["x"] + divider["width"] / 2 - slider.rect["x"] - width * value / 100) < 2
        slider.send_keys(Keys.END)
        assert float(slider.get_attribute("value")) == 100
        assert "100%" in after.value_of_css_property("clip-path")  # all before

        # the mask overlay: one photo, then all
        mask = first.find_element(By.CSS_SELECTOR, "img.mask")
        assert not mask.is_displayed()
        first.find_element(By.CSS_SELECTOR, ".mask-toggle").click()
        assert mask.is_displayed()
        assert mask.rect["width"] == after.rect["width"] and mask.rect["y"] == after.rect["y"]
        first.find_element(By.CSS_SELECTOR, ".mask-toggle").click()
        assert not mask.is_displayed()
        driver.find_element(By.ID, "all-masks").click()
        assert all(m.is_displayed() for m in driver.find_elements(By.CSS_SELECTOR, "img.mask"))

        # the broken file, listed with its error
        failed = driver.find_element(By.CSS_SELECTOR, "section.failed")
        assert failed.find_element(By.TAG_NAME, "h2").text == str(inputs[-1])
        assert "broken.jpg" in failed.find_element(By.CSS_SELECTOR, ".error").text
        status = [td.text for td in driver.find_elements(By.CSS_SELECTOR, ".overview td:last-child")]
        assert status == ["ok"] * good + ["failed"]

        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors


def test_write_report_from_python(tmp_path: Path) -> None:
    """The API ``make bench`` uses: entries from arrays, grey and oversized previews, a (low, high)
    mask, an entry without pictures; a second report in the same folder removes the first's."""
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (100, 2000), dtype=np.uint8)
    high, low = grey > 250, grey < 5
    entries = [
        ReportEntry("a/b <c>.png", before=grey, after=grey // 2, mask=(low, high), method="biharmonic",
                    seconds=0.5, peak=2.25),
        ReportEntry("figures only", method="cross-channel"),
        ReportEntry("x.png", error="x.png: damaged"),
    ]
    index = write_report(tmp_path, entries, title="bench <1>")
    page = index.read_text(encoding="utf-8")
    assert "<title>bench &lt;1&gt;</title>" in page and "a/b &lt;c&gt;.png" in page
    assert "2.25 × clip level" in page and "x.png: damaged" in page
    files = sorted(p.name for p in (tmp_path / "images").iterdir())
    assert files == ["000_b _c__after.jpg", "000_b _c__before.jpg", "000_b _c__mask.png"]
    with PILImage.open(tmp_path / "images" / files[2]) as im:
        assert im.size == (MAX_PREVIEW_WIDTH, 80)
        rgba = np.asarray(im)
    assert {tuple(v) for v in rgba.reshape(-1, 4)} >= {(255, 0, 255, 160), (0, 200, 255, 160), (0, 0, 0, 0)}
    write_report(tmp_path, entries[1:])
    assert not list((tmp_path / "images").iterdir())


def test_report_of_a_camera_raw(tmp_path: Path) -> None:
    """A camera RAW's page entry: developed previews, the photosite mask, and the brightest
    recovered value (its float output keeps it)."""
    from libdeclip import cli
    from tests.test_raw import _cfa_data, _write_cfa

    data = _cfa_data(np.full(3, 256.0), 4095)
    data[20:30, 40:52] = 4095
    raw = _write_cfa(tmp_path / "photo.dng", data, [256], 4095)
    assert cli.main(["declip", str(raw), "--report", str(tmp_path / "report"), "-q"]) == 0
    page = (tmp_path / "report" / "index.html").read_text(encoding="utf-8")
    assert "camera RAW (Libdeclip Synthetic)" in page and "× clip level" in page
    assert len(list((tmp_path / "report" / "images").glob("000_photo_*"))) == 3
