"""The README's configuration reference, generated from `Settings`: one row per variable with its default
and the comment written above the field (`conduit settings`; `make check-settings` catches drift)."""

from __future__ import annotations

import inspect
import json
import re

from pydantic import BaseModel, SecretStr

from conduit_server.runtime.settings import Settings


def _comments(model: type[BaseModel]) -> dict[str, str]:
    """Each field's meaning: the comment block above it, which also covers the fields right below it."""
    found: dict[str, str] = {}
    block: list[str] = []
    meaning, in_comment = "", False
    for line in inspect.getsource(model).splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            block = [*block, stripped.lstrip("# ")] if in_comment else [stripped.lstrip("# ")]
            in_comment = True
        elif (match := re.match(r"\s{4}(\w+): ", line)) and not stripped.startswith("model_config"):
            meaning = " ".join(block) if in_comment else meaning
            found[match.group(1)] = meaning
            in_comment = False
        else:
            block, meaning, in_comment = [], "", False
    return found


def _rows(model: type[BaseModel], prefix: str) -> list[str]:
    rows: list[str] = []
    comments = _comments(model)
    for name, info in model.model_fields.items():
        variable = f"{prefix}{name.upper()}"
        if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel):
            rows.extend(_rows(info.annotation, f"{variable}__"))
            continue
        default = info.get_default(call_default_factory=True)
        if isinstance(default, SecretStr):
            default = default.get_secret_value()
        shown = json.dumps(default) if isinstance(default, list) else str(default)
        rows.append(f"| `{variable}` | `{shown}` | {comments.get(name, '')} |" if shown else
                    f"| `{variable}` | empty | {comments.get(name, '')} |")
    return rows


def reference() -> str:
    """Every setting as a Markdown table (variable, default, meaning): the README's configuration reference."""
    return "\n".join(["| variable | default | meaning |", "| --- | --- | --- |", *_rows(Settings, "CONDUIT_")])
