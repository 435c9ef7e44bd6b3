"""Record every OpenAI call with the customer and feature it served (README "Record your usage").

Run against the real API (needs OPENAI_API_KEY):   python examples/record_usage.py
Run offline against a built-in fake API:          python examples/record_usage.py --offline
Then see what the database holds:                 python -m walleta --db sqlite:///data/usage-example.db status
(run from the repository root; the database file is data/usage-example.db)
"""

import sys

import walleta
from openai import OpenAI


def make_client() -> OpenAI:
    if "--offline" not in sys.argv:
        return OpenAI()
    import httpx2  # a fake API answering with a real chat.completion payload, for trying this without a key

    body = {"id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": "gpt-5.4-mini-2026-03-17",
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "Done."}}],
            "usage": {"prompt_tokens": 812, "completion_tokens": 96, "total_tokens": 908,
                      "prompt_tokens_details": {"cached_tokens": 512}}, "service_tier": "default"}
    transport = httpx2.MockTransport(lambda request: httpx2.Response(200, json=body, headers={"x-request-id": f"req_{id(request)}"}))
    return OpenAI(api_key="offline", http_client=httpx2.Client(transport=transport))


# --- the 10 lines -------------------------------------------------------------------------------
client = walleta.instrument(make_client(), store="sqlite:///data/usage-example.db")   # 1. wrap the client once

with walleta.attribute(customer="acme", feature="summarize"):                         # 2. say who a call is for
    reply = client.chat.completions.create(
        model="gpt-5.4-mini",
        messages=[{"role": "user", "content": "Summarize our Q3 support tickets in one line."}],
    )
print(reply.choices[0].message.content)

client.close()                                                                        # 3. flushes the recorder
# ------------------------------------------------------------------------------------------------

store = walleta.open_store("sqlite:///data/usage-example.db")
print(store.query("SELECT customer_id, feature, model, input_tokens, cached_input_tokens, output_tokens, cost_pico "
                  "FROM usage_events ORDER BY id DESC LIMIT 1").to_string(index=False))
