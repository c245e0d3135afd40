"""`seqattn serve`: an HTTP JSON API over trained runs, and the attention explorer page.

    GET  /                    the page (seqattn/static/: plain HTML, CSS and JS, no build step)
    GET  /runs                the loaded runs: config summary, scores from RUN_DIR/eval/*.json, limits
    GET  /runs/{name}/curves  the run's learning curves (from metrics.jsonl)
    POST /translate           {"text": [...], "beam": 5, "nbest": 3, "attention": true, "run": "name"}

Every client mistake is a 4xx with one JSON message, {"error": "..."}, and the server keeps
serving. FastAPI and uvicorn are an optional extra (`pip install 'seqattn[serve]'`), imported only
here, inside functions, so the rest of seqattn never needs them.
"""

# No `from __future__ import annotations` here: FastAPI reads the route functions' annotations
# (`request: Request`) at runtime, and Request is imported inside build_app, not at module level.
import asyncio
import json
import math
import socket
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from seqattn.curves import read_curves, run_names
from seqattn.decode_queue import DecodeQueue
from seqattn.errors import UserError

STATIC = Path(__file__).with_name("static")
PAGE_FILES = {"/": ("index.html", "text/html"), "/explorer.js": ("explorer.js", "text/javascript"),
              "/explorer.css": ("explorer.css", "text/css")}
# The page may load only what this server serves: nothing from the internet, no inline scripts.
PAGE_HEADERS = {"Content-Security-Policy": "default-src 'self'; img-src 'self' data:",
                "X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}
EOS_PIECE = "</s>"


@dataclass(frozen=True)
class ServeLimits:
    """What one request may ask for; beyond it the answer is a 4xx, not a slow server."""

    max_lines: int = 64  # sentences per request: a page or a script's batch; corpora go to `translate`
    max_chars: int = 1000  # characters per sentence; the model truncates at data.max_length pieces anyway
    max_beam: int = 16  # decoding cost grows with the beam; BLEU stops improving well before 16

    @property
    def max_body_bytes(self) -> int:
        # Each character can take 12 bytes as JSON (a \\uXXXX surrogate pair), plus the other fields.
        return self.max_lines * (self.max_chars * 12 + 16) + 4096


class ApiError(Exception):
    """A request the server refuses: HTTP status and one message for the client."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


@dataclass
class LoadedRun:
    name: str
    translator: Any  # seqattn.load(...)'s Translator, or anything with the same translate()
    queue: DecodeQueue


@dataclass(frozen=True)
class TranslateRequest:
    text: list[str]
    run: str
    beam: int
    nbest: int
    attention: bool


def require_server_packages() -> None:
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise UserError("the server needs FastAPI and uvicorn", "seqattn serve",
                        "pip install 'seqattn[serve]'") from None


def load_runs(run_dirs: list[Path], device: str = "auto",
              say: Callable[[str], None] = print) -> list[LoadedRun]:
    """Load each run, each with its own decoding thread; names from the folder names."""
    import seqattn

    runs: list[LoadedRun] = []
    try:
        for run_dir, name in zip(run_dirs, run_names(run_dirs)):
            translator = seqattn.load(run_dir, device=device)
            # Waiting requests merge up to one of the run's own decoding batches.
            queue = DecodeQueue(translator, translator.config.search.batch_size, name)
            runs.append(LoadedRun(name, translator, queue))
            say(f"loaded {name}: {translator.config.model.kind} from {run_dir}")
    except BaseException:
        close_runs(runs)
        raise
    return runs


def close_runs(runs: list[LoadedRun]) -> None:
    for run in runs:
        run.queue.close()


# --- requests ---------------------------------------------------------------------------------


def _type_name(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null",
            int: "an integer", float: "a number"}.get(type(value), type(value).__name__)


def parse_json_body(body: bytes) -> dict:
    """The request body as a JSON object, or an ApiError saying what is wrong with it."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(400, f"request body is not valid UTF-8 (byte {exc.start + 1})") from None
    if not text.strip():
        raise ApiError(400, 'empty request body: send JSON like {"text": ["Ein Hund läuft."]}')
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ApiError(400, f"malformed JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    except RecursionError:
        raise ApiError(400, "malformed JSON: nested too deeply") from None
    if not isinstance(value, dict):
        raise ApiError(400, f"the body must be a JSON object, got {_type_name(value)}")
    return value


def _int_field(body: dict, key: str, default: int, low: int, high: int, high_name: str = "") -> int:
    value = body.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(422, f"'{key}' must be an integer, got {_type_name(value)}")
    if not low <= value <= high:
        top = f"{high_name} ({high})" if high_name else str(high)
        raise ApiError(422, f"'{key}' must be from {low} to {top}, got {value}")
    return value


def _check_line(index: int, line: Any, limits: ServeLimits) -> str:
    where = f"text[{index}]"
    if not isinstance(line, str):
        raise ApiError(422, f"'{where}' must be a string, got {_type_name(line)}")
    if len(line) > limits.max_chars:
        raise ApiError(413, f"'{where}' has {len(line)} characters; the limit is {limits.max_chars}")
    if "\n" in line or "\r" in line:
        raise ApiError(422, f"'{where}' holds a line break: send one sentence per list item")
    if "\x00" in line:
        raise ApiError(422, f"'{where}' holds a NUL character")
    try:
        line.encode("utf-8")
    except UnicodeEncodeError as exc:  # JSON can spell lone surrogates (\\ud800) that UTF-8 cannot
        raise ApiError(422, f"'{where}' holds an unpaired surrogate at character {exc.start + 1}") from None
    return line


def _text_field(body: dict, limits: ServeLimits) -> list[str]:
    if "text" not in body:
        raise ApiError(422, "missing 'text': a list of sentences, e.g. {\"text\": [\"Ein Hund läuft.\"]}")
    text = body["text"]
    lines = [text] if isinstance(text, str) else text  # one sentence may come without its list
    if not isinstance(lines, list):
        raise ApiError(422, f"'text' must be a list of strings, got {_type_name(text)}")
    if len(lines) > limits.max_lines:
        raise ApiError(413, f"'text' has {len(lines)} sentences; the limit is {limits.max_lines}")
    lines = [_check_line(i, line, limits) for i, line in enumerate(lines)]
    if not any(line.strip() for line in lines):
        raise ApiError(422, "'text' is empty: give at least one non-blank sentence")
    return lines


def parse_translate(body: dict, runs: dict[str, LoadedRun], limits: ServeLimits) -> TranslateRequest:
    unknown = sorted(set(body) - {"text", "beam", "nbest", "attention", "run"})
    if unknown:
        raise ApiError(422, f"unknown field '{unknown[0]}': use text, beam, nbest, attention, run")
    run = body.get("run")
    run = next(iter(runs)) if run is None else run
    if not isinstance(run, str):
        raise ApiError(422, f"'run' must be a string, got {_type_name(run)}")
    if run not in runs:
        raise ApiError(404, f"unknown run '{run}': loaded are {', '.join(runs)}")
    text = _text_field(body, limits)
    default_beam = min(runs[run].translator.config.search.beam_size, limits.max_beam)
    beam = _int_field(body, "beam", default_beam, 1, limits.max_beam)
    nbest = _int_field(body, "nbest", 1, 1, beam, "the beam")
    attention = body.get("attention", True)
    if not isinstance(attention, bool):
        raise ApiError(422, f"'attention' must be true or false, got {_type_name(attention)}")
    return TranslateRequest(text, run, beam, nbest, attention)


# --- answers ----------------------------------------------------------------------------------


def _finite(value: float) -> float | None:
    return round(float(value), 4) if math.isfinite(value) else None


def alignment(attention: np.ndarray, src_pieces: list[str], tgt_pieces: list[str]) -> str:
    """Pharaoh `src-tgt` pairs: each output piece with the source piece it attends to most.

    The end-of-sentence pieces are no words: their row is left out, and the argmax runs over the
    real source pieces only, so a row weighing `</s>` most still points at a word (as OpenNMT-py
    and `seqattn translate --align` do). Pairs sorted by source, then target.
    attention: [len(tgt_pieces), len(src_pieces)].
    """
    src_len = len(src_pieces) - (1 if src_pieces[-1:] == [EOS_PIECE] else 0)
    tgt_len = len(tgt_pieces) - (1 if tgt_pieces[-1:] == [EOS_PIECE] else 0)
    if src_len == 0 or tgt_len == 0:
        return ""
    best = np.asarray(attention)[:tgt_len, :src_len].argmax(axis=1)  # [tgt_len]
    return " ".join(f"{i}-{j}" for i, j in sorted((int(i), j) for j, i in enumerate(best)))


def _rounded(matrix: Any) -> list:
    # float64 first: a float32 rounded to 4 decimals still prints as 0.05389999970793724.
    return np.round(np.asarray(matrix, dtype=np.float64), 4).tolist()


def attention_parts(result: Any) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The [tgt, src] matrix to draw and align with, and the [layers, heads, tgt, src] stack if any.

    A multi-layer model's search may hand back per-step [layers, heads, src] weights stacked as
    `attention` [tgt, layers, heads, src] and no `attention_layers`: then the summary is the last
    layer's mean over heads (what alignment extraction from Transformers usually takes).
    """
    attention = None if result.attention is None else np.asarray(result.attention)
    layers = getattr(result, "attention_layers", None)
    if attention is not None and attention.ndim == 4:
        layers = attention.transpose(1, 2, 0, 3) if layers is None else layers  # [L, H, T, S]
        attention = attention[:, -1].mean(axis=1)  # [T, S]
    if attention is not None and attention.shape != (len(result.tgt_pieces), len(result.src_pieces)):
        attention = None  # not a matrix over these pieces: nothing honest to draw
    return attention, None if layers is None else np.asarray(layers)


def translation_json(result: Any) -> dict:
    """One Translation as JSON; attention matrices rounded to 4 decimals (plenty for a picture)."""
    attention, layers = attention_parts(result)
    answer = {
        "source": result.source, "text": result.text, "score": _finite(result.score),
        "nbest": [{"score": _finite(score), "text": text} for score, text in result.nbest],
        "src_pieces": list(result.src_pieces), "tgt_pieces": list(result.tgt_pieces),
        "attention": None if attention is None else _rounded(attention),
        "alignment": None if attention is None else alignment(attention, result.src_pieces,
                                                              result.tgt_pieces),
    }
    if layers is not None:
        answer["attention_layers"] = _rounded(layers)
    return answer


def _config_summary(translator: Any) -> dict:
    config = translator.config
    model = getattr(translator, "model", None)
    return {
        "model": json.loads(json.dumps(asdict(config.model), default=str)),
        "src_lang": config.data.src_lang, "tgt_lang": config.data.tgt_lang,
        "max_length": config.data.max_length, "beam_size": config.search.beam_size,
        "has_attention": bool(getattr(model, "has_attention", True)),
        "parameters": getattr(translator, "num_parameters", None),
        "checkpoint": str(getattr(translator, "checkpoint", "")),
    }


def eval_scores(run_dir: Path) -> list[dict]:
    """The scores in RUN_DIR/eval/*.json (as written by `seqattn evaluate`), newest name order."""
    scores = []
    from seqattn.rundir import RunDir

    eval_folder = RunDir(run_dir).eval
    for path in sorted(eval_folder.glob("*.json")):
        try:
            report = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # a half-written or foreign file: the other scores still show
        if isinstance(report, dict) and "bleu" in report:
            scores.append({"file": path.name, **{k: report.get(k) for k in
                                                  ("split", "bleu", "chrf", "beam", "sentences")}})
    return scores


def run_json(run: LoadedRun) -> dict:
    translator = run.translator
    return {"name": run.name, "run_dir": str(translator.run_dir), "kind": translator.config.model.kind,
            "config": _config_summary(translator), "scores": eval_scores(translator.run_dir)}


# --- the app ----------------------------------------------------------------------------------


async def _read_body(request: Any, limit: int) -> bytes:
    """The body, refusing one longer than `limit` before reading it all into memory."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"request body of {int(declared)} bytes; the limit is {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"request body over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def translate_answer(request: TranslateRequest, run: LoadedRun) -> dict:
    """Decode on the run's thread; the event loop keeps serving meanwhile."""
    future = run.queue.submit(request.text, request.beam, request.nbest, request.attention)
    try:
        results = await asyncio.wrap_future(future)
    except UserError as exc:
        raise ApiError(422, exc.message().removeprefix("error: ")) from None
    return {"run": run.name, "beam": request.beam, "nbest": request.nbest,
            "translations": [translation_json(r) for r in results]}


def _add_error_handlers(app: Any) -> None:
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException

    @app.exception_handler(ApiError)
    async def api_error(request, exc: ApiError):
        return JSONResponse({"error": exc.message}, status_code=exc.status)

    @app.exception_handler(HTTPException)
    async def http_error(request, exc: HTTPException):  # unknown paths, wrong methods
        message = {404: f"no such page: {request.url.path}",
                   405: f"{request.method} is not allowed on {request.url.path}"}
        return JSONResponse({"error": message.get(exc.status_code, str(exc.detail))},
                            status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request, exc: RequestValidationError):  # e.g. a bad path parameter
        first = (exc.errors() or [{}])[0]
        where = ".".join(str(part) for part in first.get("loc", ()))
        return JSONResponse({"error": f"{first.get('msg', 'invalid request')} ({where})"}, status_code=422)

    @app.exception_handler(Exception)
    async def internal_error(request, exc: Exception):
        # A bug, not the client's fault: uvicorn logs the traceback, the client gets one line.
        return JSONResponse({"error": "internal error (the server log has the details)"},
                            status_code=500)


def _add_page_routes(app: Any) -> None:
    from fastapi.responses import Response

    def handler(content: bytes, media_type: str):
        async def page():
            return Response(content, media_type=media_type, headers=PAGE_HEADERS)
        return page

    for url, (filename, media_type) in PAGE_FILES.items():
        content = (STATIC / filename).read_bytes()  # read once: the page is part of the package
        app.add_api_route(url, handler(content, media_type), methods=["GET"], include_in_schema=False)


def build_app(runs: list[LoadedRun], limits: ServeLimits = ServeLimits()):
    """The FastAPI app over already-loaded runs (the first one answers requests naming none)."""
    from fastapi import FastAPI, Request

    if not runs:
        raise UserError("no runs to serve", "seqattn serve", "pass at least one RUN_DIR")
    by_name = {run.name: run for run in runs}
    app = FastAPI(title="seqattn", docs_url=None, redoc_url=None, openapi_url=None)
    _add_error_handlers(app)
    _add_page_routes(app)

    @app.get("/runs")
    async def list_runs():
        return {"runs": [run_json(run) for run in runs], "limits": asdict(limits)}

    @app.get("/runs/{name:path}/curves")  # :path, as a disambiguated name may hold a '/'
    async def curves(name: str):
        if name not in by_name:
            raise ApiError(404, f"unknown run '{name}': loaded are {', '.join(by_name)}")
        try:
            series = read_curves(by_name[name].translator.run_dir, name)
        except UserError as exc:
            raise ApiError(404, exc.message().removeprefix("error: ")) from None
        return series.to_json()

    @app.post("/translate")
    async def translate(request: Request):
        body = parse_json_body(await _read_body(request, limits.max_body_bytes))
        parsed = parse_translate(body, by_name, limits)
        return await translate_answer(parsed, by_name[parsed.run])

    return app


def open_socket(host: str, port: int) -> socket.socket:
    """Bind before loading anything slow, so a taken port is one clear error."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except (OSError, OverflowError) as exc:
        sock.close()
        reason = getattr(exc, "strerror", None) or str(exc)
        raise UserError(f"cannot listen on {host}:{port} ({reason})", "--host/--port",
                        "pick another --port, or stop what listens there") from None
    sock.listen(128)
    return sock


def serve(run_dirs: list[Path], host: str = "127.0.0.1", port: int = 8000,
          limits: ServeLimits = ServeLimits(), device: str = "auto",
          say: Callable[[str], None] = print) -> None:
    """Load the runs and serve them until interrupted."""
    require_server_packages()
    import uvicorn

    sock = open_socket(host, port)
    runs: list[LoadedRun] = []
    try:
        runs = load_runs(run_dirs, device, say)
        app = build_app(runs, limits)
        if host not in ("127.0.0.1", "localhost", "::1"):
            say(f"warning: listening on {host}: anyone who can reach this machine can use the server")
        shown = f"[{host}]" if ":" in host else host
        say(f"serving {', '.join(r.name for r in runs)} at http://{shown}:{sock.getsockname()[1]}/ "
            "(Ctrl-C stops)")
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
        server.run(sockets=[sock])
    finally:
        sock.close()
        close_runs(runs)
