"""The explorer page in a real headless browser (Debian's chromium, driven by Selenium).

Skipped, with the reason, where the browser, its driver or Selenium is missing; `.ci/run` installs
them. The page talks to a real uvicorn on 127.0.0.1 and loads nothing from anywhere else.
"""

from __future__ import annotations

import json
import shutil
import urllib.request

import pytest

pytest.importorskip("fastapi", reason="the server's extra is not installed: pip install 'seqattn[serve]'")
pytest.importorskip("selenium", reason="selenium is not installed: pip install 'seqattn[dev]'")
from serve_support import LayeredTranslator, close_runs, make_runs, running_server, seq2seq_run_dir  # noqa: E402

import seqattn  # noqa: E402
from seqattn.serve import build_app  # noqa: E402

BROWSER = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
DRIVER = shutil.which("chromedriver")
if not (BROWSER and DRIVER):
    pytest.skip("no chromium and chromedriver on PATH (apt-get install chromium chromium-driver)",
                allow_module_level=True)

SENTENCE = "ka lo mi ne"


@pytest.fixture(scope="module")
def server(trained_run, tmp_path_factory):
    attention = seqattn.load(trained_run, device="cpu")
    named = {"attn": attention, "plain": seqattn.load(seq2seq_run_dir(tmp_path_factory), device="cpu"),
             "layered": LayeredTranslator(attention)}
    runs = make_runs(named)
    with running_server(build_app(runs)) as url:
        yield url
    close_runs(runs)


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = BROWSER
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1280,900"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # An explicit driver path: Selenium Manager would otherwise try to download one.
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


def wait_for(driver, script: str, timeout: float = 20.0):
    """Poll a JS expression until it is truthy (the page works asynchronously)."""
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(lambda d: d.execute_script(script))


def api_translate(url: str, run: str) -> dict:
    body = json.dumps({"text": [SENTENCE], "beam": 3, "nbest": 2, "run": run}).encode()
    request = urllib.request.Request(url + "/translate", data=body, method="POST")
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())["translations"][0]


def open_page_and_translate(driver, url: str, right_run: str | None = None) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    driver.get(url + "/")
    wait_for(driver, "return document.body.dataset.ready === 'true'")
    if right_run:
        Select(driver.find_elements(By.CSS_SELECTOR, ".pane .run-select")[1]).select_by_value(right_run)
    for field, value in (("beam", "3"), ("nbest", "2")):
        box = driver.find_element(By.ID, field)
        box.clear()
        box.send_keys(value)
    driver.find_element(By.ID, "source").send_keys(SENTENCE)
    driver.find_element(By.ID, "translate").click()
    wait_for(driver, "return [...document.querySelectorAll('.pane')].every(p => p.dataset.state === 'done')")


def test_typing_a_sentence_shows_translations_and_a_heatmap_row_per_output_piece(server, browser):
    from selenium.webdriver.common.by import By

    open_page_and_translate(browser, server)
    left, right = browser.find_elements(By.CSS_SELECTOR, ".pane")
    expected = api_translate(server, "attn")
    assert left.find_element(By.CSS_SELECTOR, ".translation").text == expected["text"]
    assert len(left.find_elements(By.CSS_SELECTOR, ".nbest li")) == 2
    rows = left.find_elements(By.CSS_SELECTOR, "table.heatmap tbody tr")
    assert len(rows) == len(expected["tgt_pieces"])
    assert all(len(r.find_elements(By.CSS_SELECTOR, "td.cell")) == len(expected["src_pieces"]) for r in rows)
    # The model without attention, beside it, on the same sentence: a translation and no heatmap.
    plain = api_translate(server, "plain")["text"]  # a 10-step model may say nothing: "(empty)"
    assert right.find_element(By.CSS_SELECTOR, ".translation").text == (plain or "(empty)")
    assert right.find_elements(By.CSS_SELECTOR, ".no-attention")
    assert not right.find_elements(By.CSS_SELECTOR, "table.heatmap")
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors  # no script errors, no blocked (outside) resources


def test_hovering_an_output_piece_lights_the_source_pieces_it_attended_to(server, browser):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    open_page_and_translate(browser, server)
    left = browser.find_elements(By.CSS_SELECTOR, ".pane")[0]
    expected = api_translate(server, "attn")
    first_output_piece = left.find_elements(By.CSS_SELECTOR, ".tgt-pieces .piece")[0]
    ActionChains(browser).move_to_element(first_output_piece).perform()
    source = left.find_elements(By.CSS_SELECTOR, ".src-pieces .piece")
    lit = [span.value_of_css_property("background-color") for span in source]
    assert len(lit) == len(expected["src_pieces"])
    assert all(color.startswith("rgba(245, 158, 11") for color in lit)  # amber, weighted by attention
    strongest = max(range(len(lit)), key=lambda i: expected["attention"][0][i])
    assert source[strongest].get_attribute("class") == "piece lit"
    row = left.find_elements(By.CSS_SELECTOR, "table.heatmap tbody tr")[0]
    assert "active" in row.get_attribute("class")


def test_a_many_layer_model_gets_a_layer_and_head_selector(server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    open_page_and_translate(browser, server, right_run="layered")
    right = browser.find_elements(By.CSS_SELECTOR, ".pane")[1]
    assert not browser.find_elements(By.CSS_SELECTOR, ".pane:first-child select.layer-head")
    chooser = Select(right.find_element(By.CSS_SELECTOR, "select.layer-head"))
    assert len(chooser.options) == 1 + 2 * (1 + 3)  # the model's own, then per layer: mean + 3 heads

    def colors():
        cells = right.find_elements(By.CSS_SELECTOR, "td.cell")
        return [c.value_of_css_property("background-color") for c in cells]

    before = colors()
    chooser.select_by_value("1:2")  # layer 2, head 3
    after = colors()
    assert len(after) == len(before) and after != before
    rows = right.find_elements(By.CSS_SELECTOR, "table.heatmap tbody tr")
    assert len(rows) == len(api_translate(server, "layered")["tgt_pieces"])


def test_the_page_fits_a_phone_screen(server, browser):
    browser.set_window_size(390, 844)
    try:
        open_page_and_translate(browser, server)
        # Nothing wider than the screen: wide heatmaps scroll inside their own box.
        width = browser.execute_script("return document.documentElement.scrollWidth")
        inner = browser.execute_script("return window.innerWidth")
        assert width <= inner
        panes = browser.execute_script(
            "return [...document.querySelectorAll('.pane')].map(p => p.getBoundingClientRect().left)")
        assert panes[0] == panes[1]  # stacked, not squeezed side by side
    finally:
        browser.set_window_size(1280, 900)


def test_one_loaded_run_fills_the_left_pane_and_leaves_the_right_one_empty(trained_run, browser):
    from selenium.webdriver.common.by import By

    runs = make_runs({"only": seqattn.load(trained_run, device="cpu")})
    try:
        with running_server(build_app(runs)) as url:
            open_page_and_translate(browser, url)
            left, right = browser.find_elements(By.CSS_SELECTOR, ".pane")
            assert left.find_element(By.CSS_SELECTOR, ".translation").text
            assert "empty" in right.get_attribute("class")
            assert not right.find_elements(By.CSS_SELECTOR, ".sentence")
            assert not [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    finally:
        close_runs(runs)
