"""Drives a running `tunesmith serve` with the official `openai` Python client.

Usage: python3 openai_client.py BASE_URL MODEL_NAME
Exit status 0 when every check passes; an assertion message otherwise. Run by
crates/server/tests/http.rs (skipped there when Python or the `openai` package is missing).
"""

import sys

from openai import OpenAI

base_url, model = sys.argv[1], sys.argv[2]
client = OpenAI(base_url=base_url, api_key="sesame", max_retries=0)

# Models.
listed = [m.id for m in client.models.list()]
assert listed == [model], listed
assert client.models.retrieve(model).id == model

# Completions: n, stop, seed, logprobs, usage.
c = client.completions.create(model=model, prompt="The cat", max_tokens=8, n=2, temperature=0, logprobs=2)
assert len(c.choices) == 2, c
assert c.choices[0].text == c.choices[1].text, "greedy samples agree"
assert c.choices[0].finish_reason in ("stop", "length"), c.choices[0].finish_reason
assert len(c.choices[0].logprobs.tokens) == c.usage.completion_tokens // 2
assert all(lp <= 0 for lp in c.choices[0].logprobs.token_logprobs)
assert c.usage.total_tokens == c.usage.prompt_tokens + c.usage.completion_tokens
free = c.choices[0].text
if len(free) > 3 and free[2:4].strip():
    stop = free[2:4]
    cut = client.completions.create(model=model, prompt="The cat", max_tokens=8, temperature=0, stop=[stop])
    assert cut.choices[0].text == free[: free.index(stop)], (cut.choices[0].text, free, stop)
seeded = [
    client.completions.create(model=model, prompt="Once", max_tokens=6, temperature=1, seed=3).choices[0].text
    for _ in range(2)
]
assert seeded[0] == seeded[1], seeded

# Streamed completion equals the whole one.
streamed = "".join(
    chunk.choices[0].text
    for chunk in client.completions.create(model=model, prompt="The cat", max_tokens=8, temperature=0, stream=True)
    if chunk.choices
)
assert streamed == free, (streamed, free)

# Chat completions, whole and streamed.
messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}]
chat = client.chat.completions.create(model=model, messages=messages, max_tokens=8, temperature=0)
reply = chat.choices[0].message
assert reply.role == "assistant", reply
parts = []
for chunk in client.chat.completions.create(model=model, messages=messages, max_tokens=8, temperature=0, stream=True):
    if chunk.choices and chunk.choices[0].delta.content:
        parts.append(chunk.choices[0].delta.content)
assert "".join(parts) == reply.content, (parts, reply.content)

# Errors come back as the client's own exception types.
import openai

try:
    client.completions.create(model=model, prompt="x", max_tokens=-1)
    raise AssertionError("max_tokens=-1 was accepted")
except openai.BadRequestError as e:
    assert "max_tokens" in str(e), e
try:
    client.completions.create(model="gpt-4", prompt="x")
    raise AssertionError("another model was accepted")
except openai.NotFoundError:
    pass
try:
    OpenAI(base_url=base_url, api_key="wrong", max_retries=0).models.list()
    raise AssertionError("a wrong key was accepted")
except openai.AuthenticationError:
    pass
print("openai client: all checks passed")
