"""`seqattn serve`: the JSON API (FastAPI's test client), its refusals, a load test against a real
uvicorn on localhost, and the command line (the decoding queue: tests/test_decode_queue.py)."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the server's extra is not installed: pip install 'seqattn[serve]'")
from fastapi.testclient import TestClient  # noqa: E402
from serve_support import LayeredTranslator, close_runs, make_runs, running_server, seq2seq_run_dir  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

import seqattn  # noqa: E402
from seqattn.cli import app as cli_app  # noqa: E402
from seqattn.serve import ServeLimits, alignment, build_app, open_socket, translation_json  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SENTENCES = ["ka lo mi", "ne pu ri so", "ta vu", "ze ka ka lo mi ne", "so so ta"]


@pytest.fixture(scope="module")
def translators(trained_run, tmp_path_factory):
    plain = seq2seq_run_dir(tmp_path_factory)
    return {"attn": seqattn.load(trained_run, device="cpu"), "plain": seqattn.load(plain, device="cpu")}


@pytest.fixture(scope="module")
def runs(translators):
    named = {**translators, "layered": LayeredTranslator(translators["attn"])}
    loaded = make_runs(named)
    yield loaded
    close_runs(loaded)


@pytest.fixture(scope="module")
def client(runs):
    return TestClient(build_app(runs, ServeLimits(max_lines=4, max_chars=40, max_beam=6)))


def post(client, body):
    return client.post("/translate", json=body)


def test_translate_gives_text_scores_nbest_pieces_attention_and_alignment(client, translators):
    answer = post(client, {"text": SENTENCES[:3], "beam": 3, "nbest": 2, "run": "attn"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["run"], body["beam"], body["nbest"]) == ("attn", 3, 2)
    direct = translators["attn"].translate(SENTENCES[:3], beam=3, nbest=2)
    for got, want in zip(body["translations"], direct):
        assert got["text"] == want.text and got["source"] == want.source
        assert got["score"] == pytest.approx(want.score, abs=1e-3)
        assert [n["text"] for n in got["nbest"]] == [text for _, text in want.nbest]
        assert got["nbest"][0]["score"] >= got["nbest"][1]["score"]
        attention = np.array(got["attention"])
        assert attention.shape == (len(got["tgt_pieces"]), len(got["src_pieces"]))
        np.testing.assert_allclose(attention.sum(axis=1), 1.0, atol=1e-3)
        assert got["alignment"] == alignment(want.attention, want.src_pieces, want.tgt_pieces)


def test_the_first_run_and_its_default_beam_answer_a_bare_request(client, translators):
    body = post(client, {"text": "ka lo"}).json()  # a bare string is one sentence
    assert body["run"] == "attn" and body["beam"] == translators["attn"].config.search.beam_size
    assert post(client, {"text": "ka lo", "run": None, "beam": None}).json() == body
    assert body["translations"][0]["text"] == translators["attn"].translate(["ka lo"])[0].text


def test_model_without_attention_answers_null_attention(client):
    result = post(client, {"text": ["ka lo mi"], "run": "plain"}).json()["translations"][0]
    # (a 10-step model's translation may be empty; what matters is that it has no attention)
    assert isinstance(result["text"], str) and result["attention"] is None
    assert result["alignment"] is None
    without = post(client, {"text": ["ka lo mi"], "run": "attn", "attention": False}).json()
    assert without["translations"][0]["attention"] is None


def test_per_layer_and_head_attention_when_the_model_has_it(client):
    result = post(client, {"text": ["ka lo mi"], "run": "layered"}).json()["translations"][0]
    layers = np.array(result["attention_layers"])
    assert layers.shape == (2, 3, len(result["tgt_pieces"]), len(result["src_pieces"]))
    np.testing.assert_allclose(layers.sum(axis=-1), 1.0, atol=1e-3)
    assert "attention_layers" not in post(client, {"text": ["ka"], "run": "attn"}).json()["translations"][0]


def test_attention_stacked_per_step_is_split_into_a_summary_and_layers(translators):
    real = translators["attn"].translate(["ka lo mi"])[0]
    steps = np.stack([real.attention, real.attention[:, ::-1]], axis=1)  # [T, 2 layers, S]
    stacked = np.repeat(steps[:, :, None, :], 3, axis=2)  # [T, 2 layers, 3 heads, S]
    real.attention = stacked
    answer = translation_json(real)
    np.testing.assert_allclose(answer["attention"], real.attention[:, -1].mean(axis=1), atol=1e-4)
    assert np.array(answer["attention_layers"]).shape == (2, 3, *steps[:, 0].shape)
    real.attention = np.ones((2, 2))  # not over these pieces: no picture rather than a wrong one
    assert translation_json(real)["attention"] is None and translation_json(real)["alignment"] is None


def test_alignment_is_the_argmax_word_per_output_piece_without_end_pieces():
    attention = np.array([[0.1, 0.7, 0.2], [0.8, 0.1, 0.1], [0.1, 0.3, 0.6], [0.2, 0.2, 0.6]])
    # Row 2 weighs </s> most, so its word is the next best (b); the </s> row has no pair.
    assert alignment(attention, ["a", "b", "</s>"], ["x", "y", "z", "</s>"]) == "0-1 1-0 1-2"
    assert alignment(attention[:1, :1], ["a"], ["x"]) == "0-0"  # no </s> on either side
    assert alignment(attention[:1], ["a", "b", "</s>"], ["</s>"]) == ""


def test_runs_lists_names_config_and_eval_scores(trained_run, tmp_path):
    run_dir = tmp_path / "copy"
    shutil.copytree(trained_run, run_dir)
    (run_dir / "eval").mkdir(exist_ok=True)
    (run_dir / "eval" / "test.json").write_text(json.dumps({"split": "test", "bleu": 12.5, "chrf": 40.0,
                                                            "beam": 5, "sentences": 40}))
    (run_dir / "eval" / "torn.json").write_text('{"bleu": ')  # half written: skipped, not a 500
    loaded = make_runs({"copy": seqattn.load(run_dir, device="cpu")})
    try:
        body = TestClient(build_app(loaded)).get("/runs").json()
    finally:
        close_runs(loaded)
    (run,) = body["runs"]
    assert run["name"] == "copy" and run["kind"] == "bahdanau" and run["config"]["has_attention"]
    assert run["config"]["model"]["embedding_size"] == 16 and run["config"]["beam_size"] == 3
    assert {"file": "test.json", "split": "test", "bleu": 12.5, "chrf": 40.0, "beam": 5,
            "sentences": 40} in run["scores"]
    assert body["limits"] == {"max_lines": 64, "max_chars": 1000, "max_beam": 16}


BAD_REQUESTS = [
    (b'{"text": ["ka"', 400, "malformed JSON"),
    (b'{"text": ["ka \xff\xfe"]}', 400, "not valid UTF-8"),
    (b"", 400, "empty request body"),
    (b'["ka"]', 400, "must be a JSON object"),
    (b'{"text": []}', 422, "'text' is empty"),
    (b'{"text": ["  ", ""]}', 422, "'text' is empty"),
    (b'{"beam": 2}', 422, "missing 'text'"),
    (b'{"text": {"a": 1}}', 422, "'text' must be a list of strings"),
    (b'{"text": ["ka", 3]}', 422, "'text[1]' must be a string"),
    (b'{"text": ["ka\\nlo"]}', 422, "line break"),
    (b'{"text": ["\\ud800"]}', 422, "unpaired surrogate"),
    (b'{"text": ["ka\\u0000"]}', 422, "NUL"),
    (b'{"text": ["ka"], "beam": "5"}', 422, "'beam' must be an integer"),
    (b'{"text": ["ka"], "beam": true}', 422, "'beam' must be an integer"),
    (b'{"text": ["ka"], "beam": 0}', 422, "'beam' must be from 1 to 6"),
    (b'{"text": ["ka"], "beam": 7}', 422, "'beam' must be from 1 to 6"),
    (b'{"text": ["ka"], "beam": 2, "nbest": 3}', 422, "'nbest' must be from 1 to the beam (2)"),
    (b'{"text": ["ka"], "attention": "yes"}', 422, "'attention' must be true or false"),
    (b'{"text": ["ka"], "run": "nope"}', 404, "unknown run 'nope': loaded are attn, plain, layered"),
    (b'{"text": ["ka"], "run": 1}', 422, "'run' must be a string"),
    (b'{"text": ["ka"], "beams": 2}', 422, "unknown field 'beams'"),
    (b'{"text": ["ka", "lo", "mi", "ne", "pu"]}', 413, "5 sentences; the limit is 4"),
    (b'{"text": ["' + b"ka " * 20 + b'"]}', 413, "60 characters; the limit is 40"),
    (b'{"text": ["ka"], "pad": "' + b"x" * 10_000 + b'"}', 413, "request body"),
    (b"[" * 100_000, 413, "request body"),
]


@pytest.mark.parametrize("body,status,words", BAD_REQUESTS, ids=[w for _, _, w in BAD_REQUESTS])
def test_bad_requests_get_one_clear_message_and_the_server_keeps_serving(client, body, status, words):
    answer = client.post("/translate", content=body)
    assert answer.status_code == status, answer.text
    assert answer.json().keys() == {"error"} and words in answer.json()["error"]
    assert "Traceback" not in answer.text
    assert post(client, {"text": ["ka lo"], "beam": 1}).status_code == 200


def test_deep_json_is_refused_not_a_crash(trained_run, runs):
    roomy = TestClient(build_app(runs, ServeLimits(max_lines=1000, max_chars=1000)))
    answer = roomy.post("/translate", content=b"[" * 100_000 + b"]" * 100_000)
    assert answer.status_code == 400 and "malformed JSON" in answer.json()["error"]


def test_other_paths_and_methods_answer_json_errors(client):
    assert client.get("/nowhere").json() == {"error": "no such page: /nowhere"}
    answer = client.get("/translate")
    assert answer.status_code == 405 and "GET is not allowed" in answer.json()["error"]
    assert client.get("/runs/nope/curves").status_code == 404


def test_the_page_and_its_files_come_from_the_server_only(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for name in ("explorer.js", "explorer.css"):
        assert f'"{name}"' in page.text and client.get(f"/{name}").status_code == 200
    everything = page.text + client.get("/explorer.js").text + client.get("/explorer.css").text
    assert "http://" not in everything.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in everything


def test_curves_of_a_loaded_run(client, trained_run):
    curves = client.get("/runs/attn/curves").json()
    assert curves["name"] == "attn"
    assert curves["train"]["steps"] == sorted(curves["train"]["steps"]) and curves["train"]["loss"]
    assert len(curves["valid"]["bleu"]) == len(curves["valid"]["steps"]) >= 1


def _post_raw(url: str, body: bytes) -> tuple[int, dict]:
    request = urllib.request.Request(url + "/translate", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_load_200_requests_from_8_clients_all_correct_and_server_still_up(runs, translators):
    expected = {beam: {s: r for s, r in zip(SENTENCES, translators["attn"].translate(SENTENCES, beam=beam))}
                for beam in (1, 3)}
    jobs = []
    for k in range(200):
        beam, lines = (1, 3)[k % 2], [SENTENCES[k % 5], SENTENCES[(k * 3) % 5]][: 1 + k % 2]
        body = b'{"text": ["ka"' if k % 25 == 0 else json.dumps({"text": lines, "beam": beam}).encode()
        jobs.append((beam, lines, body))
    with running_server(build_app(runs)) as url, ThreadPoolExecutor(8) as pool:
        futures = {pool.submit(_post_raw, url, body): (beam, lines, body) for beam, lines, body in jobs}
        for future in as_completed(futures, timeout=120):  # a bound against hangs, not a speed test
            beam, lines, body = futures[future]
            status, answer = future.result()
            if body.endswith(b'"ka"'):
                assert status == 400 and "malformed JSON" in answer["error"]
                continue
            assert status == 200, answer
            for line, got in zip(lines, answer["translations"], strict=True):
                want = expected[beam][line]
                assert got["source"] == line and got["text"] == want.text
                assert got["score"] == pytest.approx(want.score, abs=1e-3)
        with urllib.request.urlopen(url + "/runs", timeout=10) as answer:
            assert answer.status == 200


runner = CliRunner()


def test_serve_without_the_extra_is_one_error_line(monkeypatch, trained_run):
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # what `import uvicorn` meets when missing
    result = runner.invoke(cli_app, ["serve", str(trained_run)])
    assert result.exit_code == 2
    assert result.output.strip() == ("error: the server needs FastAPI and uvicorn (seqattn serve): "
                                     "pip install 'seqattn[serve]'")


def test_serve_refuses_a_missing_run_dir_and_a_taken_port(tmp_path, trained_run):
    result = runner.invoke(cli_app, ["serve", str(tmp_path / "none"), "--port", "0"])
    assert result.exit_code == 2 and result.output.startswith("error: run dir not found")
    taken = open_socket("127.0.0.1", 0)
    port = taken.getsockname()[1]
    try:
        result = runner.invoke(cli_app, ["serve", str(trained_run), "--port", str(port)])
    finally:
        taken.close()
    assert result.exit_code == 2 and result.output.startswith(f"error: cannot listen on 127.0.0.1:{port}")


def test_serve_command_serves_then_stops_on_ctrl_c(trained_run):
    command = [sys.executable, "-m", "seqattn", "serve", str(trained_run), "--port", "0"]
    process = subprocess.Popen(command, cwd=REPO, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        for line in process.stderr:  # "serving run at http://127.0.0.1:PORT/ (Ctrl-C stops)"
            lines.append(line)
            if line.startswith("serving "):
                break
        url = lines[-1].split(" at ")[1].split("/ ")[0]
        assert url.startswith("http://127.0.0.1:"), lines
        status, answer = _post_raw(url, json.dumps({"text": ["ka lo"], "beam": 1}).encode())
        assert status == 200 and answer["run"] == "run" and answer["translations"][0]["text"]
        process.send_signal(signal.SIGINT)
        assert process.wait(30) in (0, 130)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
