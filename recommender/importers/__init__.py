"""Importers for every supported leaderboard format, and format detection.

`detect(path)` picks the first format whose sniffer accepts the path; formats are ordered from
most to least specific so that, for example, an MTEB task file is not mistaken for generic JSON.
"""

from __future__ import annotations

from pathlib import Path

from recommender.errors import FormatError
from recommender.importers import (
    aider,
    alpaca_eval,
    amlb,
    eee,
    evalplus,
    livebench,
    meta,
    model_card,
    mteb,
    openllm,
    seed,
    unified,
)
from recommender.importers.base import Format, ImportContext, ParsedFile

FORMATS: tuple[Format, ...] = (
    *seed.FORMATS,
    *mteb.FORMATS[:1],
    *eee.FORMATS[:1],
    *meta.FORMATS,
    *unified.FORMATS[2:3],  # records-jsonl
    *unified.FORMATS[3:],  # modellens-csv
    *amlb.FORMATS,
    *alpaca_eval.FORMATS,
    *unified.FORMATS[1:2],  # records-csv
    *livebench.FORMATS,
    *openllm.FORMATS,
    *unified.FORMATS[:1],  # records-parquet
    *eee.FORMATS[1:],
    *mteb.FORMATS[1:],
    *evalplus.FORMATS,
    *aider.FORMATS,
    *model_card.FORMATS,
)
FORMATS_BY_NAME = {f.name: f for f in FORMATS}


def format_names() -> list[str]:
    return [f.name for f in FORMATS]


def get_format(name: str) -> Format:
    try:
        return FORMATS_BY_NAME[name]
    except KeyError:
        raise FormatError(f"unknown format {name!r}; known: {', '.join(format_names())}") from None


def detect(path: Path) -> Format | None:
    """The format that reads `path`, or None. Sniffers never raise on foreign files."""
    for fmt in FORMATS:
        if fmt.is_tree != path.is_dir():
            continue
        try:
            if fmt.sniff(path):
                return fmt
        except (OSError, UnicodeDecodeError, ValueError):
            continue
    return None


__all__ = ["FORMATS", "Format", "ImportContext", "ParsedFile", "detect", "format_names", "get_format"]
