"""Local model folders and the registry of installed ones.

A local model is a folder holding `model.onnx` (plus external data when large), `tokenizer.json`
(Hugging Face `tokenizers`) and a manifest `lensroute-model.json`:

    {"name": "...", "kind": "embedding" | "causal-lm", "max_length": 512,
     "cost": {"parameters": 134515008, ...}, ...kind-specific fields}

A causal LM's fields: "spec" (the KV cache's shape), "eos_token_ids", and "chat", its chat template
as plain strings (`routing.chat_format`; without it a conversation is answered from its last message).

Built-in models live under `$LENSROUTE_HOME/models/local/<name>`; `lensroute models add PATH`
registers a folder elsewhere (recorded in `$LENSROUTE_HOME/models/registry.json`), after checking
that it loads and that its tokenizer fits the model.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from recommender import paths
from recommender.errors import FormatError, NotFoundError, RuntimeUnavailableError, UsageError

MANIFEST = "lensroute-model.json"
KINDS = ("embedding", "causal-lm")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


@dataclass(frozen=True)
class LocalModel:
    name: str
    kind: str
    path: Path
    manifest: dict

    @property
    def max_length(self) -> int:
        return int(self.manifest.get("max_length") or 512)

    def as_json(self, provider: str | None = None) -> dict:
        return {"name": self.name, "kind": self.kind, "path": str(self.path), "provider": provider}


def valid_name(name: str) -> bool:
    """A model name lensroute can keep: letters, digits, . _ - (a folder name on any platform)."""
    return bool(_NAME.match(name))


def local_dir() -> Path:
    path = paths.models_dir() / "local"
    path.mkdir(parents=True, exist_ok=True)
    return path


def registry_file() -> Path:
    return paths.models_dir() / "registry.json"


def read_manifest(folder: Path) -> dict:
    manifest_path = folder / MANIFEST
    if not folder.is_dir():
        raise NotFoundError(f"no such model folder: {folder}")
    if not manifest_path.is_file():
        raise FormatError(f"{folder} has no {MANIFEST} (name, kind, max_length); it is not a lensroute model folder")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise FormatError(f"{manifest_path} is not valid JSON: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("kind") not in KINDS or not _NAME.match(str(manifest.get("name", ""))):
        raise FormatError(f"{manifest_path} needs a name (letters, digits, . _ -) and a kind in {', '.join(KINDS)}")
    for required in ("model.onnx", "tokenizer.json"):
        if not (folder / required).is_file():
            raise FormatError(f"{folder} lacks {required}")
    return manifest


def _registered() -> dict[str, str]:
    file = registry_file()
    if not file.is_file():
        return {}
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _save_registry(entries: dict[str, str]) -> None:
    file = registry_file()
    partial = file.with_suffix(".partial")
    partial.write_text(json.dumps(entries, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(partial, file)


def installed() -> list[LocalModel]:
    """Shipped ready-built folders, built-in folders, then registered ones (a later one of the same
    name wins); unreadable entries are skipped (listed by `check`)."""
    found: dict[str, LocalModel] = {}
    shipped = paths.bundled_models_dir()
    folders = sorted(p for p in shipped.iterdir() if p.is_dir()) if shipped.is_dir() else []
    # built here: wins over shipped; a dot folder is one being built (`models accelerate` stages there)
    folders += sorted(p for p in local_dir().iterdir() if p.is_dir() and not p.name.startswith("."))
    for folder in folders:
        try:
            manifest = read_manifest(folder)
        except (FormatError, NotFoundError):
            continue
        found[manifest["name"]] = LocalModel(manifest["name"], manifest["kind"], folder, manifest)
    for name, location in _registered().items():
        try:
            manifest = read_manifest(Path(location))
        except (FormatError, NotFoundError):
            continue
        found[name] = LocalModel(name, manifest["kind"], Path(location), manifest)
    return sorted(found.values(), key=lambda m: m.name)


def get(name: str) -> LocalModel:
    for model in installed():
        if model.name == name:
            return model
    known = ", ".join(m.name for m in installed()) or "none; run `lensroute models build-builtin`"
    raise NotFoundError(f"no local model named {name!r} (installed: {known})")


def add(folder: Path) -> LocalModel:
    """Register a folder after checking it loads and its tokenizer fits the model."""
    folder = folder.expanduser().resolve()
    manifest = read_manifest(folder)
    model = LocalModel(manifest["name"], manifest["kind"], folder, manifest)
    from routing.runtime import open_model

    open_model(model, device="cpu").check()
    entries = _registered()
    if model.name in entries and Path(entries[model.name]) != folder:
        raise UsageError(f"a model named {model.name!r} is already registered at {entries[model.name]}; remove it first")
    entries[model.name] = str(folder)
    _save_registry(entries)
    return model


def removal_effect(name: str) -> str:
    """What `remove(name)` would do, as a sentence, before anything is done (the GUI asks with it);
    a model that cannot be removed raises as `remove` would."""
    if name in _registered():
        return f"Its folder {_registered()[name]} stays: lensroute only forgets it"
    model = get(name)
    if model.path.parent == local_dir():
        again = ("`lensroute models accelerate` makes it again" if "accelerated" in model.manifest
                 else "building the built-ins makes them again")
        return f"Its built files in {model.path} are deleted ({again})"
    if model.path.parent == paths.bundled_models_dir():
        raise UsageError(f"{name!r} ships with this lensroute ({model.path}) and cannot be removed")
    raise RuntimeUnavailableError(f"{name!r} is not registered and not a built-in")


def remove(name: str) -> Path:
    """Forget a registered model (its files stay); built-ins are deleted from the data folder."""
    entries = _registered()
    if name in entries:
        location = Path(entries.pop(name))
        _save_registry(entries)
        return location
    removal_effect(name)  # raises for a shipped model or one it cannot place
    import shutil

    model = get(name)
    shutil.rmtree(model.path)
    return model.path
