"""Regenerate docs/images/report.png: the ``libdeclip declip --report`` page of real photos, as real
headless Chromium draws it (slider moved, clip mask shown on the second photo).

    .venv/bin/python -m benchmarks.report_screenshot [OUT.png]

Needs Debian's ``chromium`` and ``chromium-driver`` (``make chromium``); selenium is pointed at
/usr/bin/chromedriver, so it never downloads a driver or a browser. The photos are the shipped demo
photo and, when ``../shared/data`` is present, one of its real clipped photos. tests/test_report.py
uses :func:`chromium` and :func:`unavailable` from here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = Path(os.environ.get("LIBDECLIP_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("LIBDECLIP_CHROMEDRIVER", "/usr/bin/chromedriver"))
SCREENSHOT = REPO / "docs" / "images" / "report.png"
DEMO_PHOTO = REPO / "examples" / "night_lamps.png"
CLIPPED = REPO.parent / "shared" / "data" / "clipped"


def unavailable() -> str | None:
    """Why the browser cannot run here, or None."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            return f"{path} is missing: apt-get install chromium chromium-driver (make chromium)"
    return None


@contextmanager
def chromium(width: int = 1400, height: int = 1000) -> Iterator[WebDriver]:
    """Headless Chromium through Debian's chromedriver (never selenium-manager, never the network)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        f"--window-size={width},{height}", "--hide-scrollbars", "--force-device-scale-factor=1",
        "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--disable-sync",
        "--disable-background-networking", "--disable-component-update",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        driver.set_page_load_timeout(60)
        yield driver
    finally:
        driver.quit()


def wait_for_images(driver: WebDriver, timeout: float = 30.0) -> None:
    """Wait until every <img> of the page has finished loading (or failed)."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout).until(
        lambda d: d.execute_script("return Array.from(document.images).every(i => i.complete)")
    )


def screenshot_photos() -> list[Path]:
    """The photos shown: a real clipped photo from ../shared/data when present, then the demo."""
    candle = CLIPPED / "hdrcnn" / "img_005.png"
    return [candle, DEMO_PHOTO] if candle.is_file() else [DEMO_PHOTO]


def make_screenshot(out: Path = SCREENSHOT) -> Path:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "photos").mkdir()
        for src in screenshot_photos():
            shutil.copy(src, work / "photos" / src.name)
        # run where the names on the page are short: photos/NAME
        proc = subprocess.run(
            [sys.executable, "-m", "libdeclip", "declip", "photos", "--out-dir", "declipped",
             "--report", "report", "-q"], cwd=work, capture_output=True, text=True, timeout=600,
        )
        if proc.returncode != 0:
            raise SystemExit(f"libdeclip declip --report failed:\n{proc.stderr}")
        with chromium(1280, 1400) as driver:
            driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                                   {"width": 1280, "height": 1400, "deviceScaleFactor": 1, "mobile": False})
            driver.get((work / "report" / "index.html").as_uri())
            wait_for_images(driver)
            sliders = driver.find_elements("css selector", ".slider")
            for slider, value in zip(sliders, (38, 55), strict=False):
                driver.execute_script(
                    "arguments[0].value = arguments[1];"
                    "arguments[0].dispatchEvent(new Event('input'))", slider, value)
            toggles = driver.find_elements("css selector", ".mask-toggle")
            if len(toggles) > 1:
                toggles[1].click()
            driver.execute_script("window.scrollTo(0, 0)")
            out.parent.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(out))
    _shrink_png(out)
    return out


def _shrink_png(path: Path) -> None:
    """Re-encode the screenshot losslessly as RGB (no alpha), deflated harder."""
    from PIL import Image

    with Image.open(path) as im:
        rgb = im.convert("RGB")
    rgb.save(path, optimize=True)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    reason = unavailable()
    if reason:
        print(f"error: {reason}", file=sys.stderr)
        return 2
    out = make_screenshot(Path(argv[0]) if argv else SCREENSHOT)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
