"""Live sources: where each leaderboard is published and how to walk it.

Every adapter turns its endpoint into a sequence of `CrawlUnit`s (records to write, the cursor
after them, and the cache validators to remember). Parsing reuses the file importers, so a
crawled file and an imported copy of the same file produce the same records.
"""

from __future__ import annotations

import re
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import polars as pl

from recommender import paths
from recommender.crawl.http import PoliteClient, Response
from recommender.crawl.state import CacheEntry, cached
from recommender.errors import CrawlError, FormatError, UsageError
from recommender.importers import aider, alpaca_eval, evalplus, livebench, model_card, mteb, openllm
from recommender.importers.base import ImportContext, ParsedFile
from recommender.store import Store


@dataclass
class CrawlUnit:
    label: str
    parsed: ParsedFile | None  # None: nothing new (answered by a 304)
    cursor: dict | None
    cache: list[CacheEntry] = field(default_factory=list)
    not_modified: int = 0


@dataclass
class CrawlContext:
    store: Store
    client: PoliteClient
    base_url: str
    options: dict[str, object]
    imports: ImportContext

    def url(self, path: str) -> str:
        return f"{self.base_url.rstrip('/')}/{path.lstrip('/')}"


def _with_source_ref(parsed: ParsedFile, url: str) -> ParsedFile:
    if parsed.records.height:
        parsed.records = parsed.records.with_columns(pl.lit(url).alias("source_ref"))
    return parsed


def fetch_and_parse(ctx: CrawlContext, relative: str, parse: Callable[[Path, ImportContext], ParsedFile],
                    extra_files: tuple[str, ...] = ()) -> tuple[Response, ParsedFile | None]:
    """GET a file conditionally and parse it with a file importer (under its original relative
    path, which some importers read meaning from). A body that does not parse is fetched again,
    with backoff, before the crawl gives up on it."""
    url = ctx.url(relative)
    validators = cached(ctx.store, url)
    last_error = ""
    for attempt in range(ctx.client.politeness.max_retries + 1):
        use = validators if attempt == 0 else None
        response = ctx.client.get(url, etag=use.etag if use else None, last_modified=use.last_modified if use else None)
        if response.not_modified:
            return response, None
        with tempfile.TemporaryDirectory(prefix="lensroute-crawl-") as tmp:
            local = Path(tmp) / relative
            local.parent.mkdir(parents=True, exist_ok=True)
            local.write_bytes(response.body)
            for extra in extra_files:
                extra_response = ctx.client.get(ctx.url(extra))
                (Path(tmp) / extra).parent.mkdir(parents=True, exist_ok=True)
                (Path(tmp) / extra).write_bytes(extra_response.body)
            try:
                return response, _with_source_ref(parse(local, ctx.imports), url)
            except (FormatError, ValueError, UnicodeDecodeError, pl.exceptions.PolarsError) as exc:
                last_error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                ctx.client.retries += 1
                ctx.client._wait(min(ctx.client.politeness.backoff_cap, ctx.client.politeness.backoff_base * 2 ** attempt))
    raise CrawlError(f"{url}: invalid content after {ctx.client.politeness.max_retries + 1} attempts ({last_error})")


@dataclass(frozen=True)
class StaticFiles:
    """A leaderboard published as a few static files, one unit per file."""

    name: str
    description: str
    default_base_url: str
    files: tuple[tuple[str, Callable[[Path, ImportContext], ParsedFile]], ...]

    def units(self, ctx: CrawlContext, cursor: dict | None) -> Iterator[CrawlUnit]:
        start = int((cursor or {}).get("next_file", 0))
        for index, (relative, parse) in enumerate(self.files[start:], start=start):
            response, parsed = fetch_and_parse(ctx, relative, parse)
            yield CrawlUnit(relative, parsed, {"next_file": index + 1},
                            [CacheEntry(ctx.url(relative), response.etag, response.last_modified)],
                            not_modified=int(response.not_modified))


@dataclass(frozen=True)
class LiveBench:
    name: str = "livebench"
    description: str = "LiveBench table_<release>.csv and categories_<release>.json from livebench.ai"
    default_base_url: str = "https://livebench.ai"

    def units(self, ctx: CrawlContext, cursor: dict | None) -> Iterator[CrawlUnit]:
        release = str(ctx.options.get("release") or "")
        if not re.fullmatch(r"\d{4}_\d{2}_\d{2}", release):
            raise UsageError("livebench needs --release YYYY_MM_DD (the date in livebench.ai's table_<release>.csv)")
        table = f"table_{release}.csv"
        response, parsed = fetch_and_parse(ctx, table, livebench._parse, extra_files=(f"categories_{release}.json",))
        yield CrawlUnit(table, parsed, None, [CacheEntry(ctx.url(table), response.etag, response.last_modified)],
                        not_modified=int(response.not_modified))


_LINK_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')


def next_link(header: str | None) -> str | None:
    match = _LINK_NEXT.search(header or "")
    return match.group(1) if match else None


@dataclass(frozen=True)
class HubModels:
    """Hugging Face Hub model listing (`/api/models`, `Link` pagination, `expand` fields); a
    model's card is fetched through `/resolve/<sha>/README.md` only when its sha changed."""

    name: str = "hf-hub"
    description: str = "Hugging Face Hub model listing and model cards (model-index results)"
    default_base_url: str = "https://huggingface.co"
    expand: tuple[str, ...] = ("sha", "downloads", "likes", "lastModified", "createdAt", "pipeline_tag",
                               "library_name", "tags")

    def _first_page(self, ctx: CrawlContext) -> str:
        params = [("limit", str(min(int(ctx.options.get("page_size") or 100), 1000))),
                  ("sort", "downloads"), ("direction", "-1")]
        params += [("expand[]", field) for field in self.expand]
        for option in ("search", "author", "filter"):
            if ctx.options.get(option):
                params.append((option, str(ctx.options[option])))
        query = "&".join(f"{quote(k, safe='[]')}={quote(v)}" for k, v in params)
        return ctx.url(f"api/models?{query}")

    def _stored_shas(self, ctx: CrawlContext, ids: list[str]) -> dict[str, str]:
        from recommender.normalise import model_key
        from recommender.store.writer import _select_in

        keys = {model_key(i): i for i in ids}
        with ctx.store.reading() as conn:
            rows = _select_in(
                conn,
                "SELECT a.alias, m.hub_sha FROM model_aliases a JOIN models m ON m.id = a.model_id WHERE a.alias IN ({in})",
                sorted(keys),
            )
        return {keys[alias]: sha for alias, sha in rows if sha}

    def _card(self, ctx: CrawlContext, model_id: str, sha: str) -> ParsedFile | None:
        url = ctx.url(f"{model_id}/resolve/{sha}/README.md")
        try:
            response = ctx.client.get(url)
        except CrawlError as exc:
            if "HTTP 404" in str(exc):
                return None  # a repository without a card
            raise
        try:
            return model_card.parse_card(response.body.decode("utf-8"), model=model_id, source_ref=url, context=ctx.imports)
        except (FormatError, UnicodeDecodeError):
            return None  # an unparseable card is the author's problem, not a crawl failure

    def units(self, ctx: CrawlContext, cursor: dict | None) -> Iterator[CrawlUnit]:
        page_url = (cursor or {}).get("next_page") or self._first_page(ctx)
        seen = int((cursor or {}).get("models_seen", 0))
        limit = int(ctx.options.get("limit") or 0)
        while page_url and (not limit or seen < limit):
            response, listing = ctx.client.retry_invalid(page_url, _json_list)
            assert isinstance(listing, list)
            if limit:
                listing = listing[: limit - seen]
            ids = [str(m.get("id") or m.get("modelId")) for m in listing if m.get("id") or m.get("modelId")]
            stored = self._stored_shas(ctx, ids)
            parsed = ParsedFile()
            changed = [m for m in listing if m.get("sha") and stored.get(str(m.get("id"))) != m["sha"]]
            with ThreadPoolExecutor(max_workers=ctx.client.politeness.max_per_host) as pool:
                cards = list(pool.map(lambda m: self._card(ctx, str(m["id"]), str(m["sha"])), changed))
            for card in cards:
                if card is not None:
                    parsed.records = pl.concat([parsed.records, card.records], how="diagonal_relaxed")
                    parsed.rejected.merge(card.rejected)
            card_meta = {str(m["id"]): card.models[0] for m, card in zip(changed, cards, strict=True) if card and card.models}
            for entry in listing:
                model_id = str(entry.get("id") or "")
                if not model_id:
                    continue
                meta: dict[str, object] = {"model": model_id, "downloads": entry.get("downloads"),
                                           "extra": {"hf": {k: entry[k] for k in ("likes", "lastModified", "createdAt", "pipeline_tag", "library_name") if entry.get(k) is not None}}}
                if entry.get("sha") and entry in changed:
                    meta["hub_sha"] = entry["sha"]  # stored with the card's records, in one transaction
                licence, weights = _listing_facts(entry)
                if licence:
                    meta["licence"] = licence
                if weights:
                    meta["extra"]["open_weights"] = True  # type: ignore[index]
                if model_id in card_meta:
                    meta["licence"] = card_meta[model_id].get("licence") or licence
                    meta["extra"]["hf_card"] = (card_meta[model_id].get("extra") or {}).get("hf_card", {})  # type: ignore[index]
                parsed.models.append({k: v for k, v in meta.items() if v is not None})
            seen += len(listing)
            page_url = next_link(response.headers.get("link"))
            yield CrawlUnit(f"page {seen // max(len(listing), 1)} ({len(listing)} models, {len(changed)} cards)", parsed,
                            {"next_page": page_url, "models_seen": seen} if page_url else None)


# Hub tags naming a weights file format: the repository holds the weights themselves
_WEIGHT_FORMATS = frozenset({"safetensors", "pytorch", "gguf", "onnx", "tf", "jax", "tflite", "coreml", "mlx", "openvino"})


def _listing_facts(entry: dict) -> tuple[str | None, bool]:
    """What a Hub listing entry's tags say for the ranking filters: its licence (`license:…`, the
    card's own metadata as the Hub indexes it) and whether the repository holds weights. Every
    listed model gets them, not only those whose card is fetched again."""
    tags = [t for t in entry.get("tags") or [] if isinstance(t, str)]
    licence = next((t.split(":", 1)[1] for t in tags if t.startswith("license:") and len(t) > len("license:")), None)
    return licence, any(t in _WEIGHT_FORMATS for t in tags)


def _json_list(body: bytes) -> list:
    import json

    data = json.loads(body)
    if not isinstance(data, list):
        raise ValueError("expected a JSON list of models")
    return data


@dataclass(frozen=True)
class MtebArchive:
    """The embeddings-benchmark/results repository as a tar.gz archive, one unit per model
    folder. The archive is kept in the cache folder with its ETag, so a resumed crawl does not
    download it again and an unchanged repository costs one 304."""

    name: str = "mteb"
    description: str = "MTEB results repository archive (embeddings-benchmark/results)"
    default_base_url: str = "https://github.com"
    archive: str = "embeddings-benchmark/results/archive/refs/heads/main.tar.gz"

    def units(self, ctx: CrawlContext, cursor: dict | None) -> Iterator[CrawlUnit]:
        url = ctx.url(self.archive)
        local = paths.cache_dir() / "mteb-results.tar.gz"
        validators = cached(ctx.store, url) if cursor is None else None
        resume_after = (cursor or {}).get("after")
        if resume_after and local.exists():
            response = Response(url, 200, b"", {"etag": (cursor or {}).get("etag") or ""})
        else:
            partial = local.with_suffix(".partial")
            response = ctx.client.get(url, etag=validators.etag if validators else None,
                                      last_modified=validators.last_modified if validators else None, sink=partial)
            if response.not_modified:
                partial.unlink(missing_ok=True)
                yield CrawlUnit("archive unchanged", None, None, not_modified=1)
                return
            partial.replace(local)
        validator = [CacheEntry(url, response.etag, response.last_modified)]
        for label, parsed in self._model_dirs(local, ctx.imports, resume_after):
            yield CrawlUnit(label, _with_source_ref_prefix(parsed, url), {"after": label, "etag": response.etag})
        yield CrawlUnit("archive complete", None, None, validator)

    @staticmethod
    def _model_dirs(archive: Path, imports: ImportContext, after: str | None) -> Iterator[tuple[str, ParsedFile]]:
        """Stream the tarball; extract one `results/<model>/` folder at a time and parse it.

        Git archives list paths in sorted order, so a model's files are contiguous and a
        resumed crawl can skip every folder up to the cursor by name.
        """
        try:
            with tarfile.open(archive, "r:gz") as tar, tempfile.TemporaryDirectory(prefix="lensroute-mteb-") as tmp:
                current: str | None = None
                folder = Path(tmp)
                for member in tar:
                    parts = Path(member.name).parts
                    if len(parts) < 5 or parts[1] != "results" or not member.isfile() or not member.name.endswith(".json"):
                        continue
                    model_dir = parts[2]
                    if after is not None and model_dir <= after:
                        continue
                    if model_dir != current:
                        if current is not None:
                            yield current, mteb.parse_model_dir(folder / current, imports)
                            shutil.rmtree(folder / current, ignore_errors=True)  # bound the disk used
                        current = model_dir
                    target = folder / model_dir / parts[3] / parts[-1]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    source = tar.extractfile(member)
                    if source is not None:
                        target.write_bytes(source.read())
                if current is not None:
                    yield current, mteb.parse_model_dir(folder / current, imports)
        except (tarfile.TarError, EOFError, OSError) as exc:
            archive.unlink(missing_ok=True)  # a corrupt download must not be resumed from
            raise CrawlError(f"MTEB archive unreadable ({exc}); it will be downloaded again") from exc


def _with_source_ref_prefix(parsed: ParsedFile, url: str) -> ParsedFile:
    if parsed.records.height:
        parsed.records = parsed.records.with_columns(
            (pl.lit(url + "#") + pl.col("source_ref").str.extract(r"([^/]+/[^/]+/[^/]+)$", 1)).alias("source_ref")
        )
    return parsed


ADAPTERS = {
    adapter.name: adapter
    for adapter in (
        HubModels(),
        StaticFiles("open-llm-leaderboard", "Open LLM Leaderboard v2 contents parquet", "https://huggingface.co",
                    (("datasets/open-llm-leaderboard/contents/resolve/main/data/train-00000-of-00001.parquet", openllm._parse),)),
        MtebArchive(),
        LiveBench(),
        StaticFiles("evalplus", "EvalPlus and EvalPerf leaderboards", "https://evalplus.github.io",
                    (("results.json", evalplus._parse_results),
                     ("results/evalperf/COMBINED-RESULTS.json", evalplus._parse_evalperf))),
        StaticFiles("bigcodebench", "BigCodeBench full and hard leaderboards", "https://bigcode-bench.github.io",
                    (("results.json", evalplus._parse_bigcodebench), ("results-hard.json", evalplus._parse_bigcodebench))),
        StaticFiles("aider", "Aider leaderboards (polyglot, code editing, refactoring)",
                    "https://raw.githubusercontent.com/Aider-AI/aider/main",
                    tuple((f"aider/website/_data/{name}_leaderboard.yml", aider._parse) for name in ("polyglot", "edit", "refactor"))),
        StaticFiles("alpaca-eval", "AlpacaEval 2.0 leaderboard", "https://raw.githubusercontent.com/tatsu-lab/alpaca_eval/main/src",
                    (("alpaca_eval/leaderboards/data_AlpacaEval_2/weighted_alpaca_eval_gpt4_turbo_leaderboard.csv", alpaca_eval._parse),)),
    )
}
