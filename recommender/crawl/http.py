"""A polite HTTP client for crawling leaderboards.

Politeness and robustness, the way well-behaved crawlers do it:
* a User-Agent naming lensroute, per-host concurrency limits and a minimum interval between
  requests to one host;
* 429 and 503 honour `Retry-After` (seconds or an HTTP date), and the Hugging Face Hub's
  `RateLimit: "api";r=0;t=<seconds>` header makes the next request wait for the window reset;
* 5xx answers, timeouts, dropped connections and truncated bodies are retried with exponential
  backoff and full jitter, a bounded number of times;
* conditional requests (ETag / Last-Modified) so an unchanged resource costs a 304;
* a cap on the response size, read while streaming, so a runaway body cannot fill memory.

Waiting honours the cancel token, so Ctrl-C during a long Retry-After stops promptly.
"""

from __future__ import annotations

import email.utils
import random
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from recommender.errors import CrawlError
from recommender.progress import NEVER_CANCELLED, CancelToken


def user_agent() -> str:
    try:
        version = metadata.version("lensroute")
    except metadata.PackageNotFoundError:
        version = "0"
    return f"lensroute/{version} (model recommendation catalogue crawler; +https://github.com/lensroute/lensroute)"


@dataclass
class Politeness:
    max_per_host: int = 2  # concurrent requests to one host
    min_interval: float = 0.2  # seconds between request starts to one host
    max_retries: int = 5
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    max_retry_after: float = 300.0  # never sleep longer than this on a server's word
    timeout: float = 30.0
    max_bytes: int = 200 * 1024 * 1024


@dataclass
class Response:
    url: str
    status: int
    body: bytes
    headers: Mapping[str, str]
    not_modified: bool = False

    @property
    def etag(self) -> str | None:
        return self.headers.get("etag")

    @property
    def last_modified(self) -> str | None:
        return self.headers.get("last-modified")


@dataclass
class _HostState:
    semaphore: threading.Semaphore
    lock: threading.Lock = field(default_factory=threading.Lock)
    next_start: float = 0.0


class _Retryable(Exception):
    def __init__(self, reason: str, wait: float | None = None) -> None:
        super().__init__(reason)
        self.wait = wait


_RATELIMIT = re.compile(r"r=(\d+).*?t=(\d+)")


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = datetime.fromtimestamp(now if now is not None else time.time(), UTC)
    return max(0.0, (when - current).total_seconds())


def ratelimit_reset_seconds(value: str | None) -> float | None:
    """The Hub's `RateLimit` header (IETF draft): wait `t` seconds when `r` (remaining) is 0."""
    if not value:
        return None
    match = _RATELIMIT.search(value)
    if match and int(match.group(1)) == 0:
        return float(match.group(2))
    return None


class PoliteClient:
    """Thread-safe; one instance per crawl. `get` returns a `Response` or raises `CrawlError`."""

    def __init__(
        self,
        politeness: Politeness | None = None,
        *,
        cancel: CancelToken = NEVER_CANCELLED,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] | None = None,
        on_request: Callable[[str, int | str], None] | None = None,
    ) -> None:
        self.politeness = politeness or Politeness()
        self.cancel = cancel
        self._client = httpx.Client(
            headers={"User-Agent": user_agent(), "Accept-Encoding": "gzip"},
            timeout=self.politeness.timeout,
            follow_redirects=True,
            transport=transport,
        )
        self._hosts: dict[str, _HostState] = {}
        self._hosts_lock = threading.Lock()
        self._sleep = sleep
        self._on_request = on_request
        self.requests = 0
        self.retries = 0

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> PoliteClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- waiting --------------------------------------------------------------------------------

    def _wait(self, seconds: float) -> None:
        if seconds <= 0:
            return
        if self._sleep is not None:
            self._sleep(seconds)
        elif self.cancel.wait(seconds):
            self.cancel.raise_if_cancelled()
        self.cancel.raise_if_cancelled()

    def _host(self, url: str) -> _HostState:
        host = urlsplit(url).netloc
        with self._hosts_lock:
            if host not in self._hosts:
                self._hosts[host] = _HostState(threading.Semaphore(self.politeness.max_per_host))
            return self._hosts[host]

    def _delay_host(self, state: _HostState, seconds: float) -> None:
        with state.lock:
            state.next_start = max(state.next_start, time.monotonic() + seconds)

    def _take_turn(self, state: _HostState) -> None:
        with state.lock:
            now = time.monotonic()
            start = max(now, state.next_start)
            state.next_start = start + self.politeness.min_interval
        self._wait(start - now)

    # -- requests -------------------------------------------------------------------------------

    def get(self, url: str, *, etag: str | None = None, last_modified: str | None = None,
            params: Mapping[str, object] | None = None, sink: Path | None = None) -> Response:
        """Fetch `url`; with `sink`, the body streams to that file instead of memory (the
        returned body is then empty). Retries as described in the module docstring."""
        conditional = {}
        if etag:
            conditional["If-None-Match"] = etag
        if last_modified:
            conditional["If-Modified-Since"] = last_modified
        state = self._host(url)
        attempt = 0
        while True:
            self.cancel.raise_if_cancelled()
            try:
                with state.semaphore:
                    self._take_turn(state)
                    return self._attempt(url, conditional, params, state, sink)
            except _Retryable as exc:
                attempt += 1
                self.retries += 1
                if attempt > self.politeness.max_retries:
                    raise CrawlError(f"{url}: gave up after {attempt} attempts ({exc})") from None
                backoff = random.uniform(0, min(self.politeness.backoff_cap, self.politeness.backoff_base * 2 ** (attempt - 1)))
                wait = min(exc.wait, self.politeness.max_retry_after) if exc.wait is not None else backoff
                self._delay_host(state, wait)
                self._wait(wait)

    def _attempt(self, url: str, headers: Mapping[str, str], params: Mapping[str, object] | None,
                 state: _HostState, sink: Path | None = None) -> Response:
        self.requests += 1
        try:
            with self._client.stream("GET", url, headers=headers, params=params) as reply:
                if self._on_request:
                    self._on_request(url, reply.status_code)
                reset = ratelimit_reset_seconds(reply.headers.get("ratelimit"))
                if reset:
                    self._delay_host(state, reset)
                if reply.status_code == 304:
                    return Response(str(reply.url), 304, b"", dict(reply.headers), not_modified=True)
                if reply.status_code in (429, 503):
                    after = retry_after_seconds(reply.headers.get("retry-after"))
                    raise _Retryable(f"HTTP {reply.status_code}", after if after is not None else reset)
                if reply.status_code >= 500:
                    raise _Retryable(f"HTTP {reply.status_code}")
                if reply.status_code >= 400:
                    raise CrawlError(f"{url}: HTTP {reply.status_code}")
                declared = reply.headers.get("content-length")
                # An oversize answer is not read; it is retried (a misbehaving proxy or mirror is
                # the usual cause) and gives up with this reason if it persists.
                if declared and declared.isdigit() and int(declared) > self.politeness.max_bytes:
                    raise _Retryable(f"response of {int(declared):,} bytes exceeds the {self.politeness.max_bytes:,}-byte cap")
                chunks, size = [], 0
                handle = sink.open("wb") if sink is not None else None
                try:
                    for chunk in reply.iter_bytes():
                        size += len(chunk)
                        if size > self.politeness.max_bytes:
                            raise _Retryable(f"response exceeds the {self.politeness.max_bytes:,}-byte cap")
                        if handle is not None:
                            handle.write(chunk)
                        else:
                            chunks.append(chunk)
                finally:
                    if handle is not None:
                        handle.close()
                encoded = reply.headers.get("content-encoding")
                if declared and declared.isdigit() and not encoded and size != int(declared):
                    raise _Retryable(f"truncated body ({size} of {declared} bytes)")
                return Response(str(reply.url), reply.status_code, b"".join(chunks), dict(reply.headers))
        except httpx.TimeoutException as exc:
            if self._on_request:
                self._on_request(url, "timeout")
            raise _Retryable(f"timeout ({type(exc).__name__})") from None
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.ConnectError, httpx.WriteError) as exc:
            if self._on_request:
                self._on_request(url, "connection")
            raise _Retryable(f"connection problem ({type(exc).__name__})") from None

    def retry_invalid(self, url: str, parse: Callable[[bytes], object], **kwargs: object) -> tuple[Response, object]:
        """GET and parse; a body that fails to parse is fetched again (a proxy may have cut it),
        with the same backoff, before giving up with the parser's reason."""
        last_error = ""
        for attempt in range(self.politeness.max_retries + 1):
            response = self.get(url, **kwargs)  # type: ignore[arg-type]
            if response.not_modified:
                return response, None
            try:
                return response, parse(response.body)
            except (ValueError, UnicodeDecodeError) as exc:
                last_error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                self.retries += 1
                kwargs = {k: v for k, v in kwargs.items() if k not in ("etag", "last_modified")}
                self._wait(random.uniform(0, min(self.politeness.backoff_cap, self.politeness.backoff_base * 2 ** attempt)))
        raise CrawlError(f"{url}: invalid content after {self.politeness.max_retries + 1} attempts ({last_error})")
