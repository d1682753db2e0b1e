"""Languages of datasets and queries, as ISO 639-3 codes (the ones MTEB's `eval_langs` use).

A model's standing on datasets in the query's language says more about the query than its
standing elsewhere (a Persian retrieval task is ranked best by models that did well on other
Persian tasks), so head-to-head votes from datasets sharing a language count more. A dataset's
languages come from its metadata (`eval_langs`: "fas-Arab" → "fas") and from language names in
its part ("global-mmlu-lite [Arabic]"); a query's from `--language`, the dataset it names, or the
language names its description mentions ("… French legal documents" → fra).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from recommender.errors import UsageError

if TYPE_CHECKING:
    from recommender.space import LensSpace

# English names → code; a name maps to every code the catalogue's metadata uses for it
NAMES: dict[str, tuple[str, ...]] = {
    "afrikaans": ("afr",), "amharic": ("amh",), "arabic": ("ara",), "armenian": ("hye",), "assamese": ("asm",),
    "azerbaijani": ("aze",), "basque": ("eus",), "belarusian": ("bel",), "bengali": ("ben",), "bangla": ("ben",),
    "bosnian": ("bos",), "bulgarian": ("bul",), "burmese": ("mya",), "catalan": ("cat",), "chinese": ("cmn",),
    "mandarin": ("cmn",), "cantonese": ("yue",), "croatian": ("hrv",), "czech": ("ces",), "danish": ("dan",),
    "dutch": ("nld",), "english": ("eng",), "estonian": ("est",), "filipino": ("fil", "tgl"), "tagalog": ("tgl",),
    "finnish": ("fin",), "french": ("fra",), "galician": ("glg",), "georgian": ("kat",), "german": ("deu",),
    "greek": ("ell",), "gujarati": ("guj",), "hausa": ("hau",), "hebrew": ("heb",), "hindi": ("hin",),
    "hungarian": ("hun",), "icelandic": ("isl",), "igbo": ("ibo",), "indonesian": ("ind",), "irish": ("gle",),
    "italian": ("ita",), "japanese": ("jpn",), "javanese": ("jav",), "kannada": ("kan",), "kazakh": ("kaz",),
    "khmer": ("khm",), "kinyarwanda": ("kin",), "korean": ("kor",), "kyrgyz": ("kir",), "lao": ("lao",),
    "latvian": ("lav",), "lithuanian": ("lit",), "macedonian": ("mkd",), "malay": ("zsm", "msa"),
    "malayalam": ("mal",), "maltese": ("mlt",), "marathi": ("mar",), "mongolian": ("mon",), "nepali": ("npi", "nep"),
    "norwegian": ("nob", "nno"), "odia": ("ory",), "oriya": ("ory",), "pashto": ("pus",), "persian": ("fas",),
    "farsi": ("fas",), "polish": ("pol",), "portuguese": ("por",), "punjabi": ("pan",), "romanian": ("ron",),
    "russian": ("rus",), "serbian": ("srp",), "sinhala": ("sin",), "slovak": ("slk",), "slovenian": ("slv",),
    "somali": ("som",), "spanish": ("spa",), "swahili": ("swa",), "swedish": ("swe",), "tamil": ("tam",),
    "telugu": ("tel",), "thai": ("tha",), "turkish": ("tur",), "ukrainian": ("ukr",), "urdu": ("urd",),
    "uzbek": ("uzb", "uzn"), "vietnamese": ("vie",), "welsh": ("cym",), "xhosa": ("xho",), "yoruba": ("yor",),
    "zulu": ("zul",),
}
# ISO 639-1 codes users type, for the languages above that have one
TWO_LETTER: dict[str, str] = {
    "af": "afr", "am": "amh", "ar": "ara", "bg": "bul", "bn": "ben", "ca": "cat", "cs": "ces", "cy": "cym", "da": "dan",
    "de": "deu", "el": "ell", "en": "eng", "es": "spa", "et": "est", "eu": "eus", "fa": "fas", "fi": "fin", "fr": "fra",
    "ga": "gle", "gl": "glg", "gu": "guj", "he": "heb", "hi": "hin", "hr": "hrv", "hu": "hun", "hy": "hye", "id": "ind",
    "is": "isl", "it": "ita", "ja": "jpn", "ka": "kat", "kk": "kaz", "kn": "kan", "ko": "kor", "lt": "lit", "lv": "lav",
    "mk": "mkd", "ml": "mal", "mr": "mar", "ms": "zsm", "nl": "nld", "no": "nob", "pa": "pan", "pl": "pol", "pt": "por",
    "ro": "ron", "ru": "rus", "sk": "slk", "sl": "slv", "sr": "srp", "sv": "swe", "sw": "swa", "ta": "tam", "te": "tel",
    "th": "tha", "tl": "tgl", "tr": "tur", "uk": "ukr", "ur": "urd", "vi": "vie", "yo": "yor", "zh": "cmn", "zu": "zul",
}
# codes the metadata uses for the same language
ALIASES: dict[str, str] = {"zho": "cmn", "nor": "nob", "swh": "swa", "msa": "zsm", "nep": "npi", "uzb": "uzn", "fil": "tgl"}

_NAME_PATTERN = re.compile(r"\b(" + "|".join(sorted(NAMES, key=len, reverse=True)) + r")\b", re.IGNORECASE)


def normalise(code: str) -> str:
    base = code.strip().split("-")[0].split("_")[0].lower()
    return ALIASES.get(base, base)


def from_codes(codes: Iterable[str] | None) -> tuple[str, ...]:
    """Metadata codes ("fas-Arab", "zho-Hans") → sorted unique ISO 639-3 codes."""
    return tuple(sorted({normalise(c) for c in (codes or ()) if isinstance(c, str) and c.strip()}))


_NEEDS_CAPITAL = {"polish"}  # "polish the answers" names no language


def from_text(text: str | None) -> tuple[str, ...]:
    """Languages a text names in English ("Japanese product reviews" → jpn)."""
    found = {normalise(code) for name in _NAME_PATTERN.findall(text or "")
             if not (name.lower() in _NEEDS_CAPITAL and name[0].islower()) for code in NAMES[name.lower()]}
    return tuple(sorted(found))


def parse_option(values: Sequence[str]) -> tuple[str, ...]:
    """`--language` values: names, ISO 639-1 or 639-3 codes, comma-separated or repeated."""
    out = set()
    for value in values:
        for part in (p.strip() for p in value.split(",")):
            if not part:
                continue
            key = part.lower()
            if key in NAMES:
                out.update(normalise(c) for c in NAMES[key])
            elif key in TWO_LETTER:
                out.add(TWO_LETTER[key])
            elif re.fullmatch(r"[a-z]{3}(-[a-z]{4})?", key):
                out.add(normalise(key))
            else:
                raise UsageError(f"--language {part!r} is not a language name or an ISO 639 code (e.g. French, fr, fra)")
    return tuple(sorted(out))


class LanguageIndex:
    """Which datasets share a language with a query: a [datasets × languages] boolean table."""

    def __init__(self, per_dataset: Sequence[Sequence[str]]) -> None:
        self.codes = sorted({c for langs in per_dataset for c in langs})
        position = {c: i for i, c in enumerate(self.codes)}
        self.table = np.zeros((len(per_dataset), len(self.codes)), bool)
        for d, langs in enumerate(per_dataset):
            self.table[d, [position[c] for c in langs]] = True
        self._position = position

    @classmethod
    def of_space(cls, space: LensSpace) -> LanguageIndex | None:
        """The space's datasets (a held-out dataset's own metadata is its query's language, as a
        user's `--language` is); None for a space built without languages."""
        if len(space.dataset_languages) != len(space.dataset_vocab):
            return None
        return cls(space.dataset_languages)

    @classmethod
    def from_csr(cls, codes: list[str], pointers: np.ndarray, ids: np.ndarray) -> LanguageIndex:
        return cls([[codes[i] for i in ids[pointers[d]:pointers[d + 1]]] for d in range(len(pointers) - 1)])

    def to_csr(self) -> tuple[list[str], np.ndarray, np.ndarray]:
        rows, cols = np.nonzero(self.table)
        pointers = np.searchsorted(rows, np.arange(len(self.table) + 1)).astype(np.int32)
        return self.codes, pointers, cols.astype(np.int16)

    def of(self, dataset: int) -> tuple[str, ...]:
        return tuple(self.codes[i] for i in np.flatnonzero(self.table[dataset]))

    def sharing(self, languages: Iterable[str]) -> np.ndarray | None:
        """Per dataset: does it share one of `languages`? None when the query names none."""
        columns = [self._position[c] for c in languages if c in self._position]
        if not columns:
            return None
        return self.table[:, columns].any(1)
