"""Token estimates for calls whose response carries no usage (cancelled streams, speech, ...).

`TokenCounter` is the interface: `count(text, model) -> int`. `default_counter()` gives a
`TiktokenCounter` that builds tiktoken encodings from the vocabularies bundled in
`data/tiktoken/` (no network), picks the encoding by model name (o200k_base for any model
tiktoken does not know), and falls back to `heuristic_count` when no vocabulary loads.
Counting never raises: any failure falls back to the heuristic.

Heuristic (documented, used when no vocabulary is available): ceil(characters / 4), OpenAI's
rule of thumb for English text; 0 for empty text.

Chat overhead follows OpenAI's cookbook (gpt-4o family): 3 tokens per message, 1 per `name`,
and 3 to prime the reply.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import threading
from pathlib import Path
from typing import Any, Protocol

from ..config import DATA_DIR

__all__ = [
    "TokenCounter",
    "TiktokenCounter",
    "HeuristicCounter",
    "SafeCounter",
    "heuristic_count",
    "default_counter",
    "load_encoding",
    "encoding_name",
    "TIKTOKEN_DIR",
    "chat_input_tokens",
    "responses_input_tokens",
    "texts_of",
]

log = logging.getLogger(__name__)

TIKTOKEN_DIR = DATA_DIR / "tiktoken"
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3

# Constructor arguments of tiktoken's own `tiktoken_ext.openai_public` definitions (0.14.0);
# tests check the encodings built here encode exactly like tiktoken's.
_ENDOFTEXT = "<|endoftext|>"
_ENCODINGS: dict[str, dict[str, Any]] = {
    "o200k_base": {
        "sha256": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
        "pat_str": "|".join(
            [
                r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
                r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
                r"""\p{N}{1,3}""",
                r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
                r"""\s*[\r\n]+""",
                r"""\s+(?!\S)""",
                r"""\s+""",
            ]
        ),
        "special_tokens": {_ENDOFTEXT: 199999, "<|endofprompt|>": 200018},
    },
    "cl100k_base": {
        "sha256": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        "pat_str": r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s""",
        "special_tokens": {
            _ENDOFTEXT: 100257,
            "<|fim_prefix|>": 100258,
            "<|fim_middle|>": 100259,
            "<|fim_suffix|>": 100260,
            "<|endofprompt|>": 100276,
        },
    },
}
FALLBACK_ENCODING = "o200k_base"


class TokenCounter(Protocol):
    """Anything that counts the tokens of a text for a model."""

    def count(self, text: str, model: str) -> int:  # pragma: no cover - protocol
        ...


def heuristic_count(text: str) -> int:
    """ceil(len(text) / 4): the documented estimate when no vocabulary is available."""
    return (len(text) + 3) // 4


class HeuristicCounter:
    """A `TokenCounter` using `heuristic_count` only (no vocabulary)."""

    name = "heuristic"

    def count(self, text: str, model: str) -> int:
        return heuristic_count(text)


def load_encoding(name: str, directory: Path | None = None) -> Any:
    """Build tiktoken's `name` encoding from `<directory>/<name>.tiktoken.gz`.

    Verifies the decompressed file's sha256 against tiktoken's expected hash. Raises
    (FileNotFoundError, ValueError, ImportError) when it cannot; callers fall back.
    """
    import base64

    import tiktoken

    spec = _ENCODINGS[name]
    path = (directory or TIKTOKEN_DIR) / f"{name}.tiktoken.gz"
    data = gzip.decompress(path.read_bytes())
    digest = hashlib.sha256(data).hexdigest()
    if digest != spec["sha256"]:
        raise ValueError(f"{path.name}: sha256 {digest} does not match tiktoken's {spec['sha256']}")
    ranks = {}
    for line in data.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return tiktoken.Encoding(name=name, pat_str=spec["pat_str"], mergeable_ranks=ranks, special_tokens=spec["special_tokens"])


def encoding_name(model: str) -> str:
    """tiktoken's encoding for a model name; o200k_base for unknown models or encodings not bundled."""
    try:
        from tiktoken.model import encoding_name_for_model

        name = encoding_name_for_model(model)
    except Exception:  # noqa: BLE001 - KeyError for unknown models, ImportError without tiktoken
        return FALLBACK_ENCODING
    return name if name in _ENCODINGS else FALLBACK_ENCODING


class TiktokenCounter:
    """Counts with tiktoken encodings built from bundled files; heuristic if none loads.

    Encodings load lazily (about a second for o200k_base) and are cached per instance.
    Input: `directory` holding `<encoding>.tiktoken.gz` files (default `data/tiktoken`).
    """

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or TIKTOKEN_DIR
        self._encodings: dict[str, Any] = {}
        self._failed: set[str] = set()
        self._lock = threading.Lock()

    def encoding(self, name: str) -> Any | None:
        """The loaded encoding, or None when it cannot be loaded (logged once)."""
        found = self._encodings.get(name)
        if found is not None or name in self._failed:
            return found
        with self._lock:
            if name in self._encodings:
                return self._encodings[name]
            try:
                self._encodings[name] = load_encoding(name, self.directory)
            except Exception as exc:  # noqa: BLE001 - any failure means "use the heuristic"
                self._failed.add(name)
                log.warning("walleta: tiktoken vocabulary %s unavailable (%s); using the chars/4 heuristic", name, exc)
                return None
            return self._encodings[name]

    def count(self, text: str, model: str) -> int:
        """Tokens of `text` for `model`; never raises."""
        if not text:
            return 0
        try:
            encoding = self.encoding(encoding_name(model))
            if encoding is None:
                return heuristic_count(text)
            return len(encoding.encode(text, disallowed_special=()))
        except Exception:  # noqa: BLE001
            return heuristic_count(text)


_DEFAULT: TiktokenCounter | None = None


def default_counter() -> TiktokenCounter:
    """The process-wide bundled-vocabulary counter (shared so vocabularies load once)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = TiktokenCounter()
    return _DEFAULT


# -- what to count in request and response payloads -------------------------------------------


def texts_of(value: Any) -> list[str]:
    """Every text string inside a message content / input value (strings, parts, nested lists)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        out: list[str] = []
        for item in value:
            out.extend(texts_of(item))
        return out
    if isinstance(value, dict):
        out = []
        for key in ("text", "input_text", "output_text", "content", "arguments", "refusal", "transcript", "output"):
            if key in value:
                out.extend(texts_of(value[key]))
        return out
    return []


def _safe(counter: TokenCounter, text: str, model: str) -> int:
    try:
        return int(counter.count(text, model))
    except Exception:  # noqa: BLE001 - an injected counter must not break recording either
        return heuristic_count(text)


class SafeCounter:
    """Wraps any TokenCounter so that a failure counts with the heuristic instead of raising."""

    def __init__(self, inner: TokenCounter) -> None:
        self.inner = inner

    def count(self, text: str, model: str) -> int:
        return _safe(self.inner, text, model)


_NOT_COUNTED = frozenset({"type", "id", "status", "call_id"})


def chat_input_tokens(messages: Any, model: str, counter: TokenCounter) -> int:
    """Cookbook estimate of a chat request's prompt tokens (3/message, 1/name, 3 priming)."""
    if not isinstance(messages, list):
        return 0
    total = REPLY_PRIMING
    for message in messages:
        total += TOKENS_PER_MESSAGE
        if not isinstance(message, dict):
            continue
        for key, value in message.items():
            if key in _NOT_COUNTED:
                continue
            if key == "name":
                total += TOKENS_PER_NAME + _safe(counter, str(value), model)
            elif key == "role":
                total += _safe(counter, str(value), model)
            elif key == "tool_calls" and isinstance(value, list):
                for call in value:
                    function = call.get("function", {}) if isinstance(call, dict) else {}
                    total += _safe(counter, str(function.get("name", "")), model)
                    total += _safe(counter, str(function.get("arguments", "")), model)
            else:
                total += sum(_safe(counter, text, model) for text in texts_of(value))
    return total


def responses_input_tokens(payload: dict[str, Any], model: str, counter: TokenCounter) -> int:
    """Estimate of a Responses API request's input tokens (instructions + input items)."""
    total = _safe(counter, payload.get("instructions") or "", model) if isinstance(payload.get("instructions"), str) else 0
    value = payload.get("input")
    if isinstance(value, str):
        return total + _safe(counter, value, model) + TOKENS_PER_MESSAGE + REPLY_PRIMING
    if isinstance(value, list):
        return total + chat_input_tokens([v for v in value if isinstance(v, dict)], model, counter)
    return total
