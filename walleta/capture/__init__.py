"""Capture usage: every OpenAI call recorded with its customer and feature, off the caller's path.

    import walleta
    from openai import OpenAI

    client = walleta.instrument(OpenAI(), store="sqlite:///data/walleta.db")
    with walleta.attribute(customer="acme", feature="summarize"):
        client.chat.completions.create(model="gpt-5.4", messages=[...])

Modules: `context` (attribution via contextvars, per-call `tag()` headers), `transport` (the
httpx2 tee that sees each request and response), `extract` (usage from each response shape),
`tokens` (offline tiktoken estimates), `writer` (the batching background recorder with spill
file), `limits` (monthly consumption limits), `instrument` (wiring).
"""

from __future__ import annotations

from .context import Attribution, attribute, current, tag
from .instrument import instrument, recorder_of
from .limits import Limits, LimitTracker
from .tokens import HeuristicCounter, TiktokenCounter, TokenCounter, default_counter, heuristic_count
from .writer import Recorder

__all__ = [
    "Attribution",
    "HeuristicCounter",
    "LimitTracker",
    "Limits",
    "Recorder",
    "TiktokenCounter",
    "TokenCounter",
    "attribute",
    "current",
    "default_counter",
    "heuristic_count",
    "instrument",
    "recorder_of",
    "tag",
]
