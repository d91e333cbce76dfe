"""What a prompt version holds, and its canonical form and hash.

Canonical form (what the SHA-256 is computed over, and what is stored):
  the content as JSON with keys sorted, no insignificant whitespace (``","`` and ``":"``
  separators), non-ASCII characters written as UTF-8 (not ``\\u`` escapes), absent fields
  omitted (``None`` values and empty ``parameters`` are dropped), template text exactly as given
  (no trimming, no Unicode or line-ending normalization), encoded as UTF-8. Floats use Python's
  shortest round-trip repr. Two contents hash equal exactly when they are the same content.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from gasworks.prompts.templates import CompiledTemplate, compile_template


class ModelParameters(BaseModel):
    """The typed part of a version's ``parameters`` (checked when the version is saved)."""

    model_config = ConfigDict(extra="allow")

    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    stop: list[str] | None = None


class MessageTemplate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "user", "assistant"]
    content: str = Field(max_length=2_000_000)


class PromptContent(BaseModel):
    """A system template, a user template, or a list of chat messages; optional parameters."""

    model_config = ConfigDict(extra="forbid")

    system: str | None = Field(default=None, max_length=2_000_000)
    user: str | None = Field(default=None, max_length=2_000_000)
    messages: list[MessageTemplate] | None = Field(default=None, max_length=500)
    #: model parameters applied with this prompt (temperature, max_tokens, top_p, stop, ...)
    parameters: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _shape(self) -> PromptContent:
        if self.messages is not None and (self.system is not None or self.user is not None):
            raise ValueError("give either 'messages' or 'system'/'user' templates, not both")
        if self.messages is None and self.system is None and self.user is None:
            raise ValueError("a prompt needs a 'system' or 'user' template or 'messages'")
        if self.messages is not None and not self.messages:
            raise ValueError("'messages' must not be empty")
        for text in self.templates():
            compile_template(text)  # raises TEMPLATE_SYNTAX_ERROR
        ModelParameters.model_validate(self.parameters)  # typed known keys
        return self

    def templates(self) -> list[str]:
        if self.messages is not None:
            return [m.content for m in self.messages]
        return [t for t in (self.system, self.user) if t is not None]

    def canonical_dict(self) -> dict[str, Any]:
        data = self.model_dump(mode="json", exclude_none=True)
        if not data.get("parameters"):
            data.pop("parameters", None)
        return data


def canonical_bytes(content: PromptContent) -> bytes:
    return json.dumps(
        content.canonical_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode("utf-8")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def content_hash(content: PromptContent) -> str:
    return sha256_hex(canonical_bytes(content))


@dataclass(frozen=True, slots=True)
class CompiledPrompt:
    """A version's templates compiled once: ``(role, template)`` in message order."""

    content_hash: str
    messages: tuple[tuple[str, CompiledTemplate], ...]
    parameters: dict[str, Any]

    @classmethod
    def of(cls, content: PromptContent, digest: str | None = None) -> CompiledPrompt:
        msgs: tuple[tuple[str, CompiledTemplate], ...]
        if content.messages is not None:
            msgs = tuple((m.role, compile_template(m.content)) for m in content.messages)
        else:
            pairs = (("system", content.system), ("user", content.user))
            msgs = tuple((role, compile_template(t)) for role, t in pairs if t is not None)
        return cls(digest or content_hash(content), msgs, dict(content.parameters))


def describe(content: PromptContent) -> str:
    """A readable text rendering used for diffs (one section per template)."""
    lines: list[str] = []
    if content.messages is not None:
        for i, m in enumerate(content.messages, 1):
            lines += [f"[message {i}: {m.role}]", m.content]
    else:
        if content.system is not None:
            lines += ["[system]", content.system]
        if content.user is not None:
            lines += ["[user]", content.user]
    if content.parameters:
        lines += ["[parameters]", json.dumps(content.parameters, indent=2, sort_keys=True)]
    return "\n".join(lines) + "\n"
