"""Multi-turn chat prompts for local causal LMs, in the model's own chat template.

A Hugging Face chat template is a Jinja program; the runtime should need neither Jinja nor
transformers, and a manifest should stay plain data. So the template is turned, once at build
time, into the strings it wraps each message in:

    "chat": {"start": "", "roles": {"system": [before, after], "user": [...], "assistant": [...]},
             "default_system": "You are a helpful AI assistant …" | null, "generation": "<|im_start|>assistant\\n"}

`derive` finds those strings by rendering conversations of sentinel texts, then checks them on
conversations it was not derived from; a template that is not "each message wrapped on its own"
(one that folds the system prompt into the first user turn, say) fails the check and gets no
format, so the model answers the last user message alone, as before, and says so. A model folder
added by the user without a "chat" in its manifest gets one from its `tokenizer_config.json`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

ROLES = ("system", "user", "assistant")

# Renders [{"role", "content"}, …] with or without the assistant's generation prompt.
Render = Callable[[list[dict], bool], str]


@dataclass(frozen=True)
class Turn:
    role: str  # one of ROLES
    content: str


@dataclass(frozen=True)
class ChatFormat:
    roles: dict[str, tuple[str, str]]
    generation: str
    default_system: str | None = None
    start: str = ""

    def render(self, turns: Sequence[Turn]) -> str:
        """The prompt for the assistant's next reply after `turns`."""
        parts = [self.start]
        if self.default_system is not None and (not turns or turns[0].role != "system"):
            parts.append(self.wrap(Turn("system", self.default_system)))
        parts.extend(self.wrap(turn) for turn in turns)
        parts.append(self.generation)
        return "".join(parts)

    def wrap(self, turn: Turn) -> str:
        before, after = self.roles[turn.role]
        return f"{before}{turn.content}{after}"

    def as_json(self) -> dict:
        return {"start": self.start, "roles": {r: list(w) for r, w in self.roles.items()},
                "default_system": self.default_system, "generation": self.generation}

    @classmethod
    def from_manifest(cls, manifest: dict) -> ChatFormat | None:
        """The manifest's chat format; None when it has none or it is malformed (the model then
        answers one turn, which is what it did before manifests had one)."""
        chat = manifest.get("chat")
        if not isinstance(chat, dict):
            return None
        roles = chat.get("roles")
        if not isinstance(roles, dict) or set(roles) != set(ROLES):
            return None
        if not all(isinstance(w, list) and len(w) == 2 and all(isinstance(s, str) for s in w) for w in roles.values()):
            return None
        generation, default, start = chat.get("generation"), chat.get("default_system"), chat.get("start", "")
        if not isinstance(generation, str) or not isinstance(start, str) or not isinstance(default, str | None):
            return None
        return cls({r: (w[0], w[1]) for r, w in roles.items()}, generation, default, start)


def _split(text: str, sentinels: Sequence[str]) -> list[str] | None:
    """The text around each sentinel, in order (len(sentinels) + 1 pieces), or None."""
    pieces, rest = [], text
    for sentinel in sentinels:
        head, found, rest = rest.partition(sentinel)
        if not found:
            return None
        pieces.append(head)
    return [*pieces, rest]


def _after_prefix(text: str, prefix: str) -> str | None:
    return text[len(prefix) :] if text.startswith(prefix) else None


def derive(render: Render) -> ChatFormat | None:
    """The wrapping strings of a chat template, checked; None when the template does not wrap
    each message on its own (see the module docstring)."""
    s, u, a, u2 = "lensrouteSYS", "lensrouteUSR", "lensrouteAST", "lensrouteUSR2"

    def msgs(*pairs: tuple[str, str]) -> list[dict]:
        return [{"role": role, "content": content} for role, content in pairs]

    try:
        full = _split(render(msgs(("system", s), ("user", u), ("assistant", a), ("user", u2)), False), [s, u, a, u2])
        after_a = _split(render(msgs(("system", s), ("user", u), ("assistant", a)), False), [s, u, a])
        with_gen = _split(render(msgs(("system", s), ("user", u)), True), [s, u])
        no_system = _split(render(msgs(("user", u)), True), [u])
    except Exception:  # a template may raise on any conversation it does not expect
        return None
    if not (full and after_a and with_gen and no_system):
        return None
    system_before, between_su, between_ua, between_au, user_after = full
    assistant_after = after_a[-1]
    assistant_before = _after_prefix(between_ua, user_after)
    user_before = _after_prefix(between_au, assistant_after)
    generation = _after_prefix(with_gen[-1], user_after)
    if assistant_before is None or user_before is None or generation is None or not between_su.endswith(user_before):
        return None
    system_after = between_su[: len(between_su) - len(user_before)]
    head = no_system[0]
    if not head.endswith(user_before):
        return None
    head = head[: len(head) - len(user_before)]
    start, default = "", None
    if head.endswith(system_after) and head.startswith(system_before) and len(head) >= len(system_before) + len(system_after):
        default = head[len(system_before) : len(head) - len(system_after)]
    else:
        start = head  # what precedes the first message (a BOS text, say)
    if start and not system_before.startswith(start):
        return None
    system_before = system_before[len(start) :]
    chat = ChatFormat({"system": (system_before, system_after), "user": (user_before, user_after),
                       "assistant": (assistant_before, assistant_after)}, generation, default, start)
    return chat if _agrees(chat, render) else None


def _agrees(chat: ChatFormat, render: Render) -> bool:
    """The derived strings reproduce the template on conversations they were not derived from."""
    checks = [
        [Turn("user", "What is 2 + 2?")],
        [Turn("user", "Hello there."), Turn("assistant", "Hi! How can I help?"), Turn("user", "Name a colour.")],
        [Turn("system", "Answer briefly."), Turn("user", "One"), Turn("assistant", "1"), Turn("user", "Two"),
         Turn("assistant", "2"), Turn("user", "Three")],
    ]
    try:
        return all(chat.render(turns) == render([{"role": t.role, "content": t.content} for t in turns], True)
                   for turns in checks)
    except Exception:  # as in derive
        return False


def from_tokenizer(tokenizer) -> ChatFormat | None:  # type: ignore[no-untyped-def]
    """`derive` over a transformers tokenizer's chat template (None without one)."""
    if not getattr(tokenizer, "chat_template", None):
        return None
    return derive(lambda messages, generation: tokenizer.apply_chat_template(
        messages, add_generation_prompt=generation, tokenize=False))


def template_renderer(source: str, bos_token: str = "", eos_token: str = "") -> Render:
    """A chat template rendered as transformers renders it: Jinja's immutable sandbox (a template
    from a model folder is someone else's code), trimmed blocks, `raise_exception`, `tojson`."""
    import json
    from datetime import datetime

    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise jinja2.exceptions.TemplateError(message)

    environment = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
    environment.filters["tojson"] = lambda x, indent=None: json.dumps(x, ensure_ascii=False, indent=indent)
    environment.globals.update(raise_exception=raise_exception,
                               strftime_now=lambda fmt: datetime.now().strftime(fmt))  # local time, as transformers gives it
    template = environment.from_string(source)
    return lambda messages, generation: template.render(messages=messages, add_generation_prompt=generation,
                                                        bos_token=bos_token, eos_token=eos_token)


def _token_text(value: object) -> str:
    """A special token as tokenizer_config.json writes it: a string or {"content": ...}."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else ""


def for_model(folder: Path, manifest: dict) -> ChatFormat | None:
    """A local model's chat format: the manifest's, else derived from the chat template in the
    folder's `tokenizer_config.json` (what a Hugging Face export carries), when Jinja is here."""
    chat = ChatFormat.from_manifest(manifest)
    config_file = folder / "tokenizer_config.json"
    if chat is not None or "chat" in manifest or not config_file.is_file():
        return chat
    try:
        import json

        config = json.loads(config_file.read_text(encoding="utf-8"))
        source = config.get("chat_template")
        if isinstance(source, list):  # named templates: the default one
            source = next((t.get("template") for t in source if isinstance(t, dict) and t.get("name") == "default"), None)
        if not isinstance(source, str):
            return None
        return derive(template_renderer(source, _token_text(config.get("bos_token")), _token_text(config.get("eos_token"))))
    except (ImportError, ValueError, AttributeError, OSError):  # no Jinja, or a file that is not what it claims
        return None
