"""Offline token counting: bundled vocabularies equal tiktoken's own; graceful fallbacks."""

from __future__ import annotations

import gzip
import hashlib
import shutil
from pathlib import Path

import pytest

from walleta.capture.tokens import (
    TIKTOKEN_DIR,
    HeuristicCounter,
    TiktokenCounter,
    chat_input_tokens,
    encoding_name,
    heuristic_count,
    load_encoding,
)

TEXTS = [
    "Hello world! How can I assist you today?",
    "Ünïcödé, emoji 🤖 and 中文 tokens; numbers 1234567 and   spaces\n\nnew lines",
    "def f(x):\n    return x ** 2  # code",
    "<|endoftext|> is a special token but plain text here",
]
URLS = {  # tiktoken caches each vocabulary under sha1(its download URL)
    "o200k_base": "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
    "cl100k_base": "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
}


@pytest.mark.parametrize("name", ["o200k_base", "cl100k_base"])
def test_bundled_encoding_matches_tiktoken(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tiktoken
    import tiktoken.registry

    data = gzip.decompress((TIKTOKEN_DIR / f"{name}.tiktoken.gz").read_bytes())
    (tmp_path / hashlib.sha1(URLS[name].encode()).hexdigest()).write_bytes(data)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))  # tiktoken's own loader, fed offline
    monkeypatch.setattr(tiktoken.registry, "ENCODINGS", {})
    official = tiktoken.get_encoding(name)
    ours = load_encoding(name)
    assert ours.n_vocab == official.n_vocab
    for text in TEXTS:
        assert ours.encode(text, disallowed_special=()) == official.encode(text, disallowed_special=())


def test_encoding_choice_by_model() -> None:
    assert encoding_name("gpt-4o-2024-08-06") == "o200k_base"
    assert encoding_name("gpt-5.4") == "o200k_base"
    assert encoding_name("gpt-4-0613") == "cl100k_base"
    assert encoding_name("text-embedding-3-small") == "cl100k_base"
    assert encoding_name("gpt-6-astra") == "o200k_base"  # unknown to tiktoken: o200k
    assert encoding_name("davinci") == "o200k_base"  # r50k is not bundled: o200k


def test_counter_counts_with_the_bundled_vocabulary() -> None:
    counter = TiktokenCounter()
    assert counter.count("Hello world", "gpt-4o") == 2
    assert counter.count("", "gpt-4o") == 0
    assert counter.count(TEXTS[1], "gpt-6-astra") == len(load_encoding("o200k_base").encode(TEXTS[1]))


def test_missing_or_corrupt_vocabulary_falls_back_to_the_heuristic(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    assert TiktokenCounter(tmp_path / "nowhere").count("abcdefghi", "gpt-4o") == 3  # ceil(9 / 4)
    shutil.copy(TIKTOKEN_DIR / "cl100k_base.tiktoken.gz", tmp_path / "o200k_base.tiktoken.gz")  # wrong file
    counter = TiktokenCounter(tmp_path)
    assert counter.count("abcd" * 10, "gpt-4o") == 10
    assert "does not match" in caplog.text


def test_heuristic_and_chat_overhead() -> None:
    assert [heuristic_count(t) for t in ("", "a", "abcd", "abcde")] == [0, 1, 1, 2]
    assert HeuristicCounter().count("abcdefgh", "any") == 2
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "name": "ann", "content": [{"type": "text", "text": "Hi there"}]}]
    counter = TiktokenCounter()
    # 3 priming + per message 3 + role + content (+ 1 + name)
    expected = 3 + (3 + 1 + counter.count("Be brief.", "gpt-4o")) + (3 + 1 + 1 + counter.count("ann", "gpt-4o") + counter.count("Hi there", "gpt-4o"))
    assert chat_input_tokens(messages, "gpt-4o", counter) == expected


def test_a_failing_counter_never_breaks_recording(sqlite_url: str) -> None:
    from .capture_harness import Harness

    class Broken:
        def count(self, text: str, model: str) -> int:
            raise RuntimeError("boom")

    h = Harness(sqlite_url, counter=Broken())
    h.fake.send_usage = False
    chunks = list(h.client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "abcdefgh"}], stream=True))
    assert chunks
    (row,) = h.rows()
    # heuristic per text: 3 + (3 + ceil(4/4) + ceil(8/4)) = 9 input; output "Hello! How can I assist you today?" = 34 chars -> 9
    assert (row["input_tokens"], row["output_tokens"], row["estimated"]) == (9, 9, 1)
    h.close()
