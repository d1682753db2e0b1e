"""`lensroute serve`: the routing session and the ranker behind a local HTTP API, so an
application sends each query to lensroute instead of to one fixed model.

The chat endpoint speaks the shape clients already use — OpenAI's `POST /v1/chat/completions`
and `GET /v1/models`, as RouteLLM's server does — with the routing decision added under
"lensroute"; `model: "lensroute"` (or none) routes, a pool member's name pins that member. Beside
it: `POST /v1/completions` (raw text continued and scored, `routing.http_completions`),
`POST /v1/embeddings` (OpenAI's shape, any installed embedding model), `POST /v1/route` (a
question with optional choices; `route answer --json`'s shape), `POST /v1/rank` (one
`rank --queries` line in, `rank --json`'s shape out) and `GET /health`. With an API key every
endpoint but `/health` wants `Authorization: Bearer KEY`, as OpenAI's clients send it.

Standard library only (`ThreadingHTTPServer`): a local, single-user service needs no framework.
Bodies are read with a size cap; bad input is a 4xx with an OpenAI-style `{"error": {...}}` in one
line; model work is serialised by one lock (the ONNX sessions and the answerers' cache are
shared), the ranker and the embedding models each have their own.
"""

from __future__ import annotations

import hmac
import json
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar
from urllib.parse import unquote

from recommender.errors import LensrouteError
from routing import http_options as opts
from routing.answering import Answer, Question
from routing.http_options import MAX_EMBEDDING_INPUTS, ApiError
from routing.logprobs import StreamedTokens
from routing.sampling import GREEDY, Sampling

MAX_BODY = 1 << 20  # bytes: a question, not a document store


class Api:
    """What the handlers call: the routing session (None when no router could be loaded, with why)
    and a lazily loaded ranker."""

    def __init__(self, session, session_error: str | None, load_ranker: Callable[[], object],  # type: ignore[no-untyped-def]
                 api_key: str | None = None, device: str = "auto", model_lock: threading.Lock | None = None,
                 cors_origins: Sequence[str] = ()) -> None:
        """`model_lock`: the lock around the session's models, when something beside the server
        uses the same session (the desktop app's Route page does). `cors_origins`: the web pages
        (origins like http://localhost:3000, or "*") whose scripts may call the API from a browser."""
        self.session, self.session_error = session, session_error
        self._load_ranker, self._ranker = load_ranker, None
        self.model_lock = model_lock or threading.Lock()
        self.ranker_lock, self.encoder_lock = threading.Lock(), threading.Lock()
        self.api_key, self.device = api_key or None, device
        self._encoders: dict[str, object] = {}  # embedding models opened for /v1/embeddings
        self.cors_origins = tuple(cors_origins)
        self.started = time.time()

    def allowed_origin(self, origin: str | None) -> str | None:
        """The `Access-Control-Allow-Origin` a browser request from `origin` gets (None: none,
        so the browser keeps the answer from the page)."""
        if not origin or not self.cors_origins:
            return None
        if "*" in self.cors_origins:
            return "*"
        return origin if origin in self.cors_origins else None

    def authorised(self, header: str | None) -> bool:
        """Whether a request may use the API: always without a key; with one, `Authorization:
        Bearer KEY` (what OpenAI's clients send), compared in constant time."""
        if self.api_key is None:
            return True
        scheme, _, given = (header or "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), self.api_key.encode())

    # --- helpers ----------------------------------------------------------------------------------

    def routing_session(self):  # type: ignore[no-untyped-def]
        """The routing session, or a 503 saying why there is none."""
        if self.session is None:
            raise ApiError(HTTPStatus.SERVICE_UNAVAILABLE, f"routing is not available: {self.session_error}",
                           "service_unavailable")
        return self.session

    def ranker(self):  # type: ignore[no-untyped-def]
        with self.ranker_lock:
            if self._ranker is None:
                try:
                    self._ranker = self._load_ranker()
                except LensrouteError as exc:
                    raise ApiError(HTTPStatus.SERVICE_UNAVAILABLE, f"ranking is not available: {exc}",
                                   "service_unavailable") from exc
            return self._ranker

    # --- endpoints --------------------------------------------------------------------------------

    def health(self) -> dict:
        session = self.session
        return {"status": "ok", "uptime_s": round(time.time() - self.started, 1),
                "router": None if session is None else session.saved.name,
                "pool": [] if session is None else [m.name for m in session.models],
                "router_error": self.session_error}

    def models(self) -> dict:
        from routing.local_models import installed

        created = int(self.started)
        pool = [] if self.session is None else [m.name for m in self.session.models]
        encoders = [m.name for m in installed() if m.kind == "embedding" and m.name not in pool]  # for /v1/embeddings
        names = ["lensroute", *pool, *encoders]
        return {"object": "list", "data": [{"id": n, "object": "model", "created": created, "owned_by": "lensroute"}
                                           for n in names]}

    def model(self, name: str) -> dict:
        """OpenAI's `GET /v1/models/{model}` (what `client.models.retrieve` asks)."""
        for entry in self.models()["data"]:
            if entry["id"] == name:
                return entry
        raise ApiError(HTTPStatus.NOT_FOUND, f"no model {name!r} here (GET /v1/models lists them)", "model_not_found")

    def route(self, body: dict) -> dict:
        session = self.routing_session()
        question = opts.question(body.get("question"), body.get("choices"))
        cost_weight = opts.cost_weight(body.get("cost_weight"))
        decide_only = opts.flag(body.get("decide_only"), "decide_only")
        with self.model_lock:
            try:
                decision = session.decide(question, cost_weight)
                answer = None if decide_only else session.answer_with(decision.chosen, question)
            except LensrouteError as exc:
                raise ApiError(HTTPStatus.UNPROCESSABLE_ENTITY, str(exc)) from exc
        return session.as_json(question, decision, answer)

    def chat(self, body: dict, events: EventStream | None = None) -> dict | None:
        """One chat completion; with `"stream": true` it goes out as server-sent events through
        `events` (OpenAI's chunk shape, the routing decision in the first chunk) and this returns None.
        `n` replies are written one after the other by the one routed model (a request is routed once)."""
        session = self.routing_session()
        stream = opts.flag(body.get("stream"), "stream")
        if stream and events is None:
            raise ApiError(HTTPStatus.BAD_REQUEST, "streaming needs the HTTP endpoint")
        include_usage = opts.include_usage(body.get("stream_options"))
        n = opts.replies(body.get("n"))
        extra = body.get("lensroute") or {}
        if not isinstance(extra, dict):
            raise ApiError(HTTPStatus.BAD_REQUEST, '"lensroute" must be an object like {"choices": [...]}')
        text, context, notes = opts.conversation(body.get("messages"))
        question = replace(opts.question(text, extra.get("choices")), context=tuple(context))
        if n > 1 and question.choices:
            raise ApiError(HTTPStatus.BAD_REQUEST, "n above 1 needs a free-text reply: a multiple-choice question "
                                                   "has one answer, the option the model scores best")
        budget = opts.reply_budget(body)
        cost_weight = opts.cost_weight(extra.get("cost_weight"))
        stop = opts.stop_texts(body.get("stop"))
        sampling = opts.sampling(body)
        logprobs = opts.logprobs(body)
        pinned = opts.pinned(body.get("model"), [m.name for m in session.models])
        notes += opts.ignored_options(body)
        if question.choices and sampling != GREEDY:
            notes.append("temperature, top_p, top_k, penalties and seed ignored: a multiple-choice answer is the "
                         "option the model scores best")
        if question.choices and logprobs is not None:
            notes.append("logprobs not given: a multiple-choice answer is an option, not written tokens")
        if n > 1 and sampling.greedy and not sampling.penalised:
            notes.append(f"the {n} replies are the same: greedy decoding writes one reply (give a temperature)")
        head = {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time())}

        def routed(answer: Answer | None) -> dict:
            out = session.as_json(question, decision, answer)
            return {**out, "pinned": pinned is not None, "sampling": sampling.describe(),
                    "notes": [*out["notes"], *notes]}

        with self.model_lock:
            try:
                decision = session.decide(question, cost_weight)
                if pinned is not None:
                    decision.chosen = pinned
                if not decision.eligible[decision.chosen]:
                    raise ApiError(HTTPStatus.UNPROCESSABLE_ENTITY,
                                   f"{session.models[decision.chosen].name} is an embedding model: it answers "
                                   'multiple-choice questions only (give "lensroute": {"choices": [...]})')
                question, fitted = session.fit_conversation(decision.chosen, question, budget)
                notes.extend(fitted)
                if stream:
                    assert events is not None
                    self._stream_chat(session, decision.chosen, question, budget, routed(None), head, events,
                                      include_usage, stop, sampling, n, logprobs)
                    return None
                answers = [session.answer_with(decision.chosen, question, budget, stop=stop, sampling=sampling, draw=i,
                                               logprobs=logprobs) for i in range(n)]
                texts = session.token_texts(decision.chosen)
            except LensrouteError as exc:
                raise ApiError(HTTPStatus.UNPROCESSABLE_ENTITY, str(exc)) from exc
        return {
            **head, "object": "chat.completion", "model": answers[0].model,
            "choices": [{"index": i, "message": {"role": "assistant", "content": answer.text},
                         "finish_reason": answer.finish_reason, "logprobs": opts.logprob_block(answer.logprobs, texts)}
                        for i, answer in enumerate(answers)],
            "usage": opts.usage(answers),
            "lensroute": routed(answers[0]),
        }

    @staticmethod
    def _stream_chat(session, member: int, question: Question, budget: int, routed: dict,  # type: ignore[no-untyped-def]
                     head: dict, events: EventStream, include_usage: bool = False, stop: Sequence[str] = (),
                     sampling: Sampling = GREEDY, n: int = 1, logprobs: int | None = None) -> None:
        """The replies as OpenAI's `chat.completion.chunk` events: per reply (its `index`) the
        role (the first with the routing decision), the text as the model writes it and the finish
        reason; then the usage when `stream_options.include_usage` asked for it (a last chunk with
        no choices, as OpenAI sends it) and `[DONE]`. Asked for, a token's log-probability rides in
        the chunk that carries its text (one whose text is held back waits for it). Once the events
        have begun an error can no longer change the status: it goes out as an event."""
        model = session.models[member].name

        def chunk(delta: dict, index: int = 0, finish: str | None = None, logprobs: dict | None = None,
                  **extra: object) -> dict:
            return {**head, "object": "chat.completion.chunk", "model": model,
                    "choices": [{"index": index, "delta": delta, "finish_reason": finish, "logprobs": logprobs}],
                    **extra}

        events.start()
        texts = session.token_texts(member) if logprobs is not None else None
        answers: list[Answer] = []
        try:
            for index in range(n):
                first = {"lensroute": routed} if index == 0 else {}
                events.send(chunk({"role": "assistant", "content": ""}, index, **first))
                tokens = StreamedTokens(texts)
                begun = False  # leading whitespace is dropped, as the whole reply is stripped

                def piece(text: str, index: int = index, tokens: StreamedTokens = tokens) -> None:
                    nonlocal begun
                    scored = tokens.written(text)
                    if not begun:
                        text = text.lstrip()
                        begun = bool(text)
                    if text or scored:
                        events.send(chunk({"content": text}, index, **opts.with_logprobs(scored, texts)))

                answer = session.answer_with(member, question, budget, piece, stop, sampling, index, logprobs,
                                             tokens.heard)
                if answer.choice is not None:  # a chosen option arrives whole
                    piece(answer.text)
                events.send(chunk({}, index, answer.finish_reason, **opts.with_logprobs(tokens.rest(answer.logprobs), texts)))
                answers.append(answer)
            if include_usage:
                events.send({**chunk({}), "choices": [], "usage": opts.usage(answers)})
        except LensrouteError as exc:
            events.send({"error": {"message": str(exc), "type": "invalid_request_error"}})
        events.done()

    def completions(self, body: dict, events: EventStream | None = None) -> dict | None:
        """OpenAI's text completions over the routed pool (`routing.http_completions`)."""
        from routing.http_completions import completions

        return completions(self, body, events)

    def embeddings(self, body: dict) -> dict:
        """OpenAI's embeddings endpoint over any installed embedding model (the pool's or not):
        `input` a text or a list of texts; `encoding_format` float or base64 (OpenAI's Python
        client asks for base64 by default)."""
        import base64

        import numpy as np

        texts = body.get("input")
        texts = [texts] if isinstance(texts, str) else texts
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            raise ApiError(HTTPStatus.BAD_REQUEST, "input must be a text or a non-empty list of texts (token arrays are "
                                                   "not taken)")
        if len(texts) > MAX_EMBEDDING_INPUTS:
            raise ApiError(HTTPStatus.BAD_REQUEST, f"input has {len(texts)} texts; at most {MAX_EMBEDDING_INPUTS}")
        encoding = body.get("encoding_format") or "float"
        if encoding not in ("float", "base64"):
            raise ApiError(HTTPStatus.BAD_REQUEST, "encoding_format must be float or base64")
        with self.encoder_lock:  # not the chat's lock: an embedding does not wait for a reply being written
            encoder = self._encoder(body.get("model"))
            try:
                vectors, truncated = encoder.encode(texts)
                tokens = encoder.count_tokens(texts, add_special=True)
            except LensrouteError as exc:
                raise ApiError(HTTPStatus.UNPROCESSABLE_ENTITY, str(exc)) from exc
        dimensions = body.get("dimensions")
        if dimensions is not None and dimensions != vectors.shape[1]:
            raise ApiError(HTTPStatus.BAD_REQUEST, f"{encoder.model.name} gives {vectors.shape[1]} dimensions; "
                                                   f"it cannot give {dimensions!r}")
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)

        def encoded(row: np.ndarray) -> list[float] | str:
            return base64.b64encode(row.tobytes()).decode("ascii") if encoding == "base64" else row.tolist()

        out = {"object": "list", "model": encoder.model.name,
               "data": [{"object": "embedding", "index": i, "embedding": encoded(v)} for i, v in enumerate(vectors)],
               "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
        if any(truncated):
            out["lensroute"] = {"notes": [f"{sum(truncated)} input(s) longer than {encoder.model.max_length} tokens were "
                                          "embedded from their beginning"]}
        return out

    def _encoder(self, name: object):  # type: ignore[no-untyped-def]
        from recommender.errors import NotFoundError
        from routing.local_models import get
        from routing.runtime import EmbeddingModel, open_model

        if not isinstance(name, str) or not name:
            raise ApiError(HTTPStatus.BAD_REQUEST, "model must name an installed embedding model (see GET /v1/models)")
        if name not in self._encoders:
            try:
                model = get(name)
            except NotFoundError as exc:
                raise ApiError(HTTPStatus.NOT_FOUND, str(exc), "model_not_found") from exc
            if model.kind != "embedding":
                raise ApiError(HTTPStatus.BAD_REQUEST, f"{name} is a {model.kind}, not an embedding model")
            try:
                runtime = open_model(model, device=self.device)
            except LensrouteError as exc:  # a broken model folder: its reason, not a 500
                raise ApiError(HTTPStatus.UNPROCESSABLE_ENTITY, str(exc)) from exc
            assert isinstance(runtime, EmbeddingModel)
            self._encoders[name] = runtime
        return self._encoders[name]

    def rank(self, body: dict) -> dict:
        from recommender.batch_queries import query_from, rank_queries
        from recommender.errors import FormatError

        try:
            query = query_from(body, "request")
        except FormatError as exc:
            raise ApiError(HTTPStatus.BAD_REQUEST, str(exc)) from exc
        ranker = self.ranker()
        with self.ranker_lock:
            result = next(rank_queries(ranker, [query], top_k=10))
        if "error" in result:
            raise ApiError(HTTPStatus.UNPROCESSABLE_ENTITY, result["error"])
        return {k: v for k, v in result.items() if k != "line"}


# --- request reading ----------------------------------------------------------------------------


# --- HTTP ---------------------------------------------------------------------------------------


class EventStream:
    """Server-sent events on one response (`text/event-stream`, OpenAI's `data: {json}` lines,
    ended by `data: [DONE]`); the connection closes after it, which is how the body ends."""

    def __init__(self, handler: BaseHTTPRequestHandler) -> None:
        self.handler, self.started = handler, False

    def start(self) -> None:
        handler = self.handler
        handler._status = int(HTTPStatus.OK)  # type: ignore[attr-defined]
        handler.send_response(HTTPStatus.OK)
        handler.send_header("Content-Type", "text/event-stream")
        handler.send_header("Cache-Control", "no-cache")
        handler.send_header("Connection", "close")
        handler.end_headers()
        handler.close_connection = True
        self.started = True

    def send(self, payload: dict) -> None:
        self._write(f"data: {json.dumps(payload, ensure_ascii=False)}\n\n")

    def done(self) -> None:
        self._write("data: [DONE]\n\n")

    def _write(self, text: str) -> None:
        self.handler.wfile.write(text.encode("utf-8"))
        self.handler.wfile.flush()


class _Handler(BaseHTTPRequestHandler):
    server_version = "lensroute"
    protocol_version = "HTTP/1.1"
    # headers and body go out in two writes: with Nagle on, a keep-alive client waits for the
    # delayed ACK (~40 ms measured by tests/bench/bench_serve.py) on every response
    disable_nagle_algorithm = True
    routes_get: ClassVar[dict[str, str]] = {"/health": "health", "/v1/models": "models"}
    routes_post: ClassVar[dict[str, str]] = {"/v1/chat/completions": "chat", "/v1/completions": "completions",
                                             "/v1/embeddings": "embeddings", "/v1/route": "route", "/v1/rank": "rank"}
    open_paths: ClassVar[set[str]] = {"/health"}  # answered without the API key (a liveness probe)

    def do_GET(self) -> None:  # http.server's naming
        self._serve(self.routes_get, with_body=False)

    def do_POST(self) -> None:
        self._serve(self.routes_post, with_body=True)

    def do_OPTIONS(self) -> None:
        """A browser's CORS preflight: answered without the API key (a browser sends none there);
        the allow headers go out only to an origin `--cors-origin` names."""
        self._status = int(HTTPStatus.NO_CONTENT)
        self.send_response(HTTPStatus.NO_CONTENT)
        self.send_header("Allow", "GET, POST, OPTIONS")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def end_headers(self) -> None:
        api: Api = self.server.api  # type: ignore[attr-defined]
        origin = api.allowed_origin(self.headers.get("Origin"))
        if origin is not None:
            self.send_header("Access-Control-Allow-Origin", origin)
            self.send_header("Vary", "Origin")
            if self.command == "OPTIONS":
                self.send_header("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
                self.send_header("Access-Control-Allow-Headers",
                                 self.headers.get("Access-Control-Request-Headers") or "Authorization, Content-Type")
                self.send_header("Access-Control-Max-Age", "600")
        super().end_headers()

    def _serve(self, routes: dict[str, str], *, with_body: bool) -> None:
        started = time.perf_counter()
        path = self.path.split("?", 1)[0].rstrip("/") or "/"
        api: Api = self.server.api  # type: ignore[attr-defined]
        events: EventStream | None = None
        try:
            endpoint, argument = routes.get(path), None
            if endpoint is None and not with_body and path.startswith("/v1/models/"):  # one model, by name
                endpoint, argument = "model", unquote(path.removeprefix("/v1/models/"))
            if endpoint is None:
                self.close_connection = True  # an unread body would be taken for the next request
                other = self.routes_post if routes is self.routes_get else self.routes_get
                if path in other:
                    raise ApiError(HTTPStatus.METHOD_NOT_ALLOWED, f"{path} takes {'GET' if with_body else 'POST'}")
                raise ApiError(HTTPStatus.NOT_FOUND, f"no endpoint {path} (there are {', '.join([*self.routes_get, *self.routes_post])})",
                               "not_found")
            if path not in self.open_paths and not api.authorised(self.headers.get("Authorization")):
                self.close_connection = True  # its body stays unread
                raise ApiError(HTTPStatus.UNAUTHORIZED, "a missing or wrong API key: send Authorization: Bearer KEY",
                               "invalid_api_key")
            handler = getattr(api, endpoint)
            events = EventStream(self)
            if argument is not None:
                payload = handler(argument)
            elif not with_body:
                payload = handler()
            elif endpoint in ("chat", "completions"):  # these may stream
                payload = handler(self._body(), events)
            else:
                payload = handler(self._body())
            if payload is not None:  # None: streamed already
                self._send(HTTPStatus.OK, payload)
        except ApiError as exc:
            self._refuse(exc.status, exc.message, exc.kind, events)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client went away mid-answer: nothing to tell it
        except Exception as exc:  # a bug must not kill the server: the client hears it in one line
            self._refuse(HTTPStatus.INTERNAL_SERVER_ERROR, f"unexpected error: {type(exc).__name__}: {exc}",
                         "server_error", events)
        finally:
            self.server.log_request_line(self.command, path, getattr(self, "_status", 0),  # type: ignore[attr-defined]
                                         (time.perf_counter() - started) * 1000)

    def _body(self) -> dict:
        length = self.headers.get("Content-Length")
        if length is None:
            raise ApiError(HTTPStatus.LENGTH_REQUIRED, "send the body with a Content-Length")
        try:
            size = int(length)
        except ValueError:
            raise ApiError(HTTPStatus.BAD_REQUEST, "Content-Length is not a number") from None
        if size > MAX_BODY:
            self.close_connection = True  # the unread body would be taken for the next request
            raise ApiError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"the body is {size:,} bytes; at most {MAX_BODY:,}")
        raw = self.rfile.read(size)
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise ApiError(HTTPStatus.BAD_REQUEST, f"the body is not JSON ({exc})") from None
        if not isinstance(body, dict):
            raise ApiError(HTTPStatus.BAD_REQUEST, "the body must be a JSON object")
        return body

    def _refuse(self, status: HTTPStatus, message: str, kind: str, events: EventStream | None) -> None:
        error = {"error": {"message": message, "type": kind}}
        if events is not None and events.started:  # the status went out with the first event
            events.send(error)
            events.done()
        else:
            self._send(status, error)

    def _send(self, status: HTTPStatus, payload: dict) -> None:
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        self._status = int(status)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the server logs one line per request itself (`log_request_line`)."""


class ApiServer(ThreadingHTTPServer):
    daemon_threads = True  # a client that keeps its connection open does not hold up Ctrl-C

    def __init__(self, address: tuple[str, int], api: Api, log: Callable[[str], None] | None = None) -> None:
        super().__init__(address, _Handler)
        self.api, self._log = api, log

    def log_request_line(self, method: str, path: str, status: int, ms: float) -> None:
        if self._log is not None:
            self._log(f"{method} {path} {status} {ms:.1f} ms")

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"
