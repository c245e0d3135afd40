"""Screenshot the explorer page of a running `seqattn serve` (headless chromium via Selenium).

    seqattn serve runs/bahdanau runs/seq2seq --port 8000 &
    python scripts/serve_screenshot.py http://127.0.0.1:8000 docs/serve.png \
        --text "Ein Mann fährt mit dem Fahrrad die Straße entlang." --hover 3

Needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver) and selenium.
"""

from __future__ import annotations

import argparse
import shutil

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait


def browser(width: int, height: int) -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                 f"--window-size={width},{height}", "--force-device-scale-factor=1"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"),
                            options=options)


def screenshot(url: str, output: str, text: str, beam: int, nbest: int, hover: int, width: int) -> None:
    driver = browser(width, 900)
    wait = WebDriverWait(driver, 60, poll_frequency=0.1)
    try:
        driver.get(url.rstrip("/") + "/")
        wait.until(lambda d: d.execute_script("return document.body.dataset.ready === 'true'"))
        for field, value in (("beam", beam), ("nbest", nbest)):
            driver.find_element(By.ID, field).clear()
            driver.find_element(By.ID, field).send_keys(str(value))
        driver.find_element(By.ID, "source").send_keys(text)
        driver.find_element(By.ID, "translate").click()
        wait.until(lambda d: d.execute_script(
            "return [...document.querySelectorAll('.pane')].every(p => p.dataset.state === 'done')"))
        pieces = driver.find_elements(By.CSS_SELECTOR, ".pane .tgt-pieces .piece")
        if 0 <= hover < len(pieces):
            ActionChains(driver).move_to_element(pieces[hover]).perform()
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(width, height + 20)
        if 0 <= hover < len(pieces):  # resizing may move the pointer off the piece
            ActionChains(driver).move_to_element(pieces[hover]).perform()
        driver.save_screenshot(output)
    finally:
        driver.quit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("output")
    parser.add_argument("--text", default="Ein Mann fährt mit dem Fahrrad die Straße entlang.")
    parser.add_argument("--beam", type=int, default=5)
    parser.add_argument("--nbest", type=int, default=3)
    parser.add_argument("--hover", type=int, default=3, help="output piece to hover (-1: none)")
    parser.add_argument("--width", type=int, default=1280, help="window width (390: a phone)")
    args = parser.parse_args()
    screenshot(args.url, args.output, args.text, args.beam, args.nbest, args.hover, args.width)


if __name__ == "__main__":
    main()
