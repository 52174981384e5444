"""melisma ui in a real headless browser (Debian's chromium through Selenium, no browser download): upload a
clip, convert, the output player appears and plays; a screenshot of every tab is saved as a test artefact
(``$MELISMA_SCREENSHOTS``, default data/screenshots/ in the repository)."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from extras import needs, needs_binary
from service_client import SRC, free_port
from singer_standins import write_clip

SHOTS = Path(os.environ.get("MELISMA_SCREENSHOTS", Path(__file__).resolve().parents[1] / "data" / "screenshots"))
TABS = ("Prepare", "Train", "Convert", "Cover", "Evaluate", "One-shot")


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ui")
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
           "GRADIO_ANALYTICS_ENABLED": "False"}
    log = open(folder / "ui.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "melisma", "ui", "--port", str(port), "--data-dir",
                             str(folder / "data")], stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            time.sleep(0.5)
    else:
        raise RuntimeError(f"melisma ui did not start: {(folder / 'ui.log').read_text()[-500:]}")
    yield url, folder
    proc.terminate()
    proc.wait(30)
    log.close()


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = shutil.which("chromium") or ""
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1500",
                "--autoplay-policy=no-user-gesture-required", "--mute-audio"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    yield driver
    driver.quit()


def wait_until(fn, timeout_s: float = 90.0, what: str = "condition"):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def click(element, timeout_s: float = 60.0) -> None:
    """Click as a person would: wait while Gradio's loading overlay still covers the element."""
    from selenium.common.exceptions import ElementClickInterceptedException

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            element.click()
            return
        except ElementClickInterceptedException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def open_tab(driver, label: str) -> None:
    from selenium.webdriver.common.by import By

    tab = wait_until(lambda: [t for t in driver.find_elements(By.CSS_SELECTOR, "button[role=tab]")
                              if t.text.startswith(label)], what=f"tab {label}")[0]
    click(tab)
    time.sleep(0.8)


@pytest.mark.slow
@needs("gradio", "selenium")
@needs_binary("chromium", "chromedriver")
def test_convert_in_the_browser_plays_the_output_and_every_tab_renders(ui, browser, tmp_path):
    from selenium.webdriver.common.by import By

    url, _ = ui
    clip = tmp_path / "vocal.wav"
    write_clip(clip, seconds=1.5)
    browser.get(url)
    open_tab(browser, "Convert")
    browser.find_element(By.CSS_SELECTOR, "#convert-input input[type=file]").send_keys(str(clip))
    wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, "#convert-input button[aria-label=Play]"),
               what="the uploaded clip's player")
    click(browser.find_element(By.ID, "convert-button"))
    link = wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, "#convert-output a[download]"),
                      what="the converted audio")[0]
    with urllib.request.urlopen(link.get_attribute("href"), timeout=30) as r:
        info = sf.info(io.BytesIO(r.read()))
    assert info.samplerate == 44100 and info.duration == pytest.approx(1.5, abs=0.01)
    click(browser.find_element(By.CSS_SELECTOR, "#convert-output button[aria-label=Play]"))
    wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, "#convert-output button[aria-label=Pause]")
               or "0:01" in browser.find_element(By.ID, "convert-output").text, 10, "the output to play")
    SHOTS.mkdir(parents=True, exist_ok=True)
    for label in TABS:
        open_tab(browser, label)
        assert browser.find_element(By.ID, f"tab-{label.lower()}").is_displayed()
        browser.save_screenshot(str(SHOTS / f"ui-{label.lower()}.png"))
    assert all((SHOTS / f"ui-{label.lower()}.png").stat().st_size > 10_000 for label in TABS)


@pytest.mark.slow
@needs_binary("chromium", "chromedriver")
def test_one_shot_in_the_browser_converts_to_the_uploaded_reference(ui, browser, tmp_path):
    from selenium.webdriver.common.by import By

    url, _ = ui
    vocal, ref = tmp_path / "vocal.wav", tmp_path / "ref.wav"
    write_clip(vocal, seconds=1.5)
    write_clip(ref, seconds=2.0)
    browser.get(url)
    open_tab(browser, "One-shot")
    browser.find_element(By.CSS_SELECTOR, "#oneshot-refs input[type=file]").send_keys(str(ref))
    browser.find_element(By.CSS_SELECTOR, "#oneshot-input input[type=file]").send_keys(str(vocal))
    wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, "#oneshot-input button[aria-label=Play]"),
               what="the uploaded vocal's player")
    click(browser.find_element(By.ID, "oneshot-button"))
    link = wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, "#oneshot-output a[download]"), 120,
                      what="the converted audio")[0]
    with urllib.request.urlopen(link.get_attribute("href"), timeout=30) as r:
        audio, sr = sf.read(io.BytesIO(r.read()))
    assert sr == 44100 and len(audio) / sr == pytest.approx(1.5, abs=0.01) and np.abs(audio).max() > 0.01
