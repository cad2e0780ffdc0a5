"""The embedded demo's credentials (web passwords, API tokens), kept in the data directory
(`demo-credentials.json`, mode 0600) so they stay the same across restarts of the same data."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

FILE_NAME = "demo-credentials.json"


def _path(settings: Any) -> Path:
    return Path(settings.data_dir) / FILE_NAME


def load(settings: Any) -> dict[str, dict[str, str]]:
    """{"accounts": {username: password}, "tokens": {name: secret}} (empty when unknown)."""
    try:
        document = json.loads(_path(settings).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"accounts": {}, "tokens": {}}
    return {
        section: {str(k): str(v) for k, v in dict(document.get(section) or {}).items()}
        for section in ("accounts", "tokens")
    }


def save(settings: Any, section: str, values: dict[str, str]) -> None:
    """Replaces one section, written aside then renamed (mode 0600)."""
    document = load(settings)
    document[section] = dict(values)
    path = _path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    aside = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(document, handle, indent=1)
    os.replace(aside, path)
