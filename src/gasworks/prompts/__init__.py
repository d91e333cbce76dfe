"""Prompts as infrastructure: immutable content-hashed versions, compare-and-set pointers with
rollback and canaries, dead letters, audit, scoped resolution that never fails, templates.

Public API: :class:`PromptService` (``prompt_service(runtime)``), :class:`Resolver`,
:class:`ResolvedPrompt`, :func:`render`, :func:`format_messages`, :class:`PromptContent`.
"""

from gasworks.prompts.content import CompiledPrompt, PromptContent, canonical_bytes, content_hash
from gasworks.prompts.formatter import FormattedPrompt, format_messages
from gasworks.prompts.resolver import ResolvedPrompt, Resolver
from gasworks.prompts.service import PromptService, prompt_service
from gasworks.prompts.templates import compile_template, render, template_values

__all__ = [
    "CompiledPrompt",
    "FormattedPrompt",
    "PromptContent",
    "PromptService",
    "ResolvedPrompt",
    "Resolver",
    "canonical_bytes",
    "compile_template",
    "content_hash",
    "format_messages",
    "prompt_service",
    "render",
    "template_values",
]
