"""A separate process making tracked calls, for the multi-process and kill tests.

Run: python -m tests.capture_worker --db URL --calls N --prefix P [--batch-size B]
     [--flush-interval S] [--pace-ms MS] [--progress] [--no-close]

Uses the real OpenAI client through httpx2.MockTransport; the handler answers every request with
the same embeddings payload (the shape FakeOpenAI serves) and request id `<P><n>`. Calls use
`embeddings.with_raw_response.create`, the SDK's cheapest path (no response model is built), so
the process spends its time on the call plus recording, not on pydantic. With --progress it
prints "<n> <monotonic seconds>" after call n returns. With --no-close it exits without closing
the client, so only the atexit flush writes the tail.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time

import httpx2
import openai

import walleta

BODY = json.dumps({"object": "list", "data": [{"object": "embedding", "embedding": [0.01, -0.02, 0.03], "index": 0}],
                   "model": "text-embedding-3-small", "usage": {"prompt_tokens": 8, "total_tokens": 8}}).encode()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--calls", type=int, required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--flush-interval", type=float, default=0.2)
    parser.add_argument("--pace-ms", type=float, default=0.0)
    parser.add_argument("--progress", action="store_true")
    parser.add_argument("--no-close", action="store_true")
    args = parser.parse_args()
    ids = itertools.count()

    def handler(request: httpx2.Request) -> httpx2.Response:
        headers = {"content-type": "application/json", "x-request-id": f"{args.prefix}{next(ids)}"}
        return httpx2.Response(200, headers=headers, content=BODY)

    client = openai.OpenAI(api_key="sk-test", max_retries=0, http_client=httpx2.Client(transport=httpx2.MockTransport(handler)))
    walleta.instrument(client, store=args.db, batch_size=args.batch_size, flush_interval=args.flush_interval)
    out = sys.stdout
    with walleta.attribute(customer=args.prefix, feature="worker"):
        for n in range(args.calls):
            client.embeddings.with_raw_response.create(model="text-embedding-3-small", input="hello")
            if args.progress:
                out.write(f"{n} {time.monotonic():.4f}\n")
                out.flush()
            if args.pace_ms:
                time.sleep(args.pace_ms / 1000)
    if not args.no_close:
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
