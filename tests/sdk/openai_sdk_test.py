"""The official OpenAI Python SDK against a running llmeta: run by tests/it/openai_sdk.rs.

Environment: LLMETA_BASE_URL (`http://127.0.0.1:PORT/v1`), LLMETA_API_KEY (a working key), LLMETA_REVOKED_KEY
(a revoked one), LLMETA_MODEL (a model served by the mock upstream), LLMETA_EXPECT_MODELS (comma-separated ids
the model list must contain).

Prints one line per check (`ok NAME` or `FAIL NAME: why`), and one `CALL {json}` line per call that should be
recorded, with what its record must say; the Rust test reads those. Exits 1 when any check failed.
"""

import json
import os
import sys
import traceback

import openai
import pydantic

BASE_URL = os.environ["LLMETA_BASE_URL"]
KEY = os.environ["LLMETA_API_KEY"]
REVOKED_KEY = os.environ["LLMETA_REVOKED_KEY"]
MODEL = os.environ.get("LLMETA_MODEL", "mock")
EXPECT_MODELS = [m for m in os.environ.get("LLMETA_EXPECT_MODELS", MODEL).split(",") if m]

# No retries: a failure must show as a failure, not as a second call in the records.
client = openai.OpenAI(base_url=BASE_URL, api_key=KEY, max_retries=0, timeout=60)

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city now.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}

# The mock counts, as llama.cpp does, one token per answer chunk and the end-of-sequence token when it stops.
EOS = 1


class GetWeather(pydantic.BaseModel):
    """The weather in a city now."""

    city: str


# A strict tool from a pydantic model: the SDK parses the call's arguments into it (`parsed_arguments`).
STRICT_WEATHER_TOOL = openai.pydantic_function_tool(GetWeather, name="get_weather")

failures = []


def check(name):
    """Runs the decorated function at once as one check, and prints its outcome."""

    def run(fn):
        try:
            fn()
            print(f"ok {name}", flush=True)
        except Exception as e:  # every failure is reported, and the other checks still run
            failures.append(name)
            print(f"FAIL {name}: {type(e).__name__}: {e}", flush=True)
            traceback.print_exc(file=sys.stderr)
        return fn

    return run


def expect(cond, why):
    if not cond:
        raise AssertionError(why)


def words(*texts):
    """The mock's prompt tokens: the words of every message."""
    return sum(len(t.split()) for t in texts)


def call_id(completion_id):
    expect(completion_id.startswith("chatcmpl-"), f"id {completion_id!r} is not chatcmpl-…")
    return completion_id[len("chatcmpl-"):]


def record(cid, streamed, usage, tool=None):
    """Tells the Rust test what the call's record must hold."""
    line = {
        "client": "python",
        "id": cid,
        "streamed": streamed,
        "input_tokens": usage.prompt_tokens,
        "output_tokens": usage.completion_tokens,
        "tool": tool,
    }
    print("CALL " + json.dumps(line), flush=True)


def check_usage(usage, prompt, completion):
    expect(usage is not None, "no usage")
    expect(usage.prompt_tokens == prompt, f"prompt_tokens {usage.prompt_tokens}, expected {prompt}")
    expect(
        usage.completion_tokens == completion,
        f"completion_tokens {usage.completion_tokens}, expected {completion}",
    )
    expect(
        usage.total_tokens == usage.prompt_tokens + usage.completion_tokens,
        f"total_tokens {usage.total_tokens} is not prompt + completion",
    )


@check("models list")
def _():
    ids = [m.id for m in client.models.list()]
    for m in EXPECT_MODELS:
        expect(m in ids, f"{m} not in {ids}")


@check("non-streamed completion")
def _():
    prompt = "Say five words mock:tokens=5"
    r = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": prompt}])
    expect(r.object == "chat.completion", f"object {r.object}")
    expect(r.model == MODEL, f"model {r.model!r}, asked {MODEL!r}")
    expect(len(r.choices) == 1, f"{len(r.choices)} choices")
    c = r.choices[0]
    expect(c.message.role == "assistant", f"role {c.message.role}")
    expect(c.message.content == "tok1 tok2 tok3 tok4 tok5", f"content {c.message.content!r}")
    expect(c.finish_reason == "stop", f"finish_reason {c.finish_reason}")
    expect(not c.message.tool_calls, "tool calls in a text answer")
    check_usage(r.usage, words(prompt), 5 + EOS)
    record(call_id(r.id), False, r.usage)


@check("streamed completion with usage")
def _():
    prompt = "Count to four mock:tokens=4"
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": prompt}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text, finish, usage_chunks, ids = "", [], [], set()
    for chunk in stream:
        ids.add(chunk.id)
        expect(chunk.object == "chat.completion.chunk", f"object {chunk.object}")
        expect(chunk.model == MODEL, f"chunk model {chunk.model!r}")
        if chunk.usage is not None:
            expect(chunk.choices == [], f"usage chunk has choices {chunk.choices}")
            usage_chunks.append(chunk.usage)
            continue
        expect(len(chunk.choices) == 1, f"{len(chunk.choices)} choices in a chunk")
        ch = chunk.choices[0]
        text += ch.delta.content or ""
        if ch.finish_reason is not None:
            finish.append(ch.finish_reason)
    expect(text == "tok1 tok2 tok3 tok4", f"joined deltas {text!r}")
    expect(finish == ["stop"], f"finish reasons {finish}")
    expect(len(usage_chunks) == 1, f"{len(usage_chunks)} usage chunks")
    expect(len(ids) == 1, f"chunk ids differ: {ids}")
    check_usage(usage_chunks[0], words(prompt), 4 + EOS)
    record(call_id(ids.pop()), True, usage_chunks[0])


@check("streamed completion without usage")
def _():
    stream = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Hi mock:tokens=2"}], stream=True
    )
    chunks = list(stream)
    expect(all(c.usage is None for c in chunks), "a usage chunk without stream_options.include_usage")
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    expect(text == "tok1 tok2", f"joined deltas {text!r}")
    # The record holds the provider's usage even when the client did not ask for it.
    print(
        "CALL "
        + json.dumps({"client": "python", "id": call_id(chunks[0].id), "streamed": True,
                      "input_tokens": words("Hi mock:tokens=2"), "output_tokens": 2 + EOS, "tool": None}),
        flush=True,
    )


@check("max_tokens small gives finish_reason length")
def _():
    prompt = "Talk a lot mock:tokens=50"
    r = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": prompt}], max_tokens=3
    )
    c = r.choices[0]
    expect(c.finish_reason == "length", f"finish_reason {c.finish_reason}")
    expect(c.message.content == "tok1 tok2 tok3", f"content {c.message.content!r}")
    expect(r.usage.completion_tokens == 3, f"completion_tokens {r.usage.completion_tokens}")
    record(call_id(r.id), False, r.usage)


def tool_round(streamed):
    """Asks with a tool, gets its call, answers it with the tool's result, and gets a text answer.

    Through the SDK's parsing helpers (`parse`, and `stream`, which joins the chunks itself), so the SDK checks
    the tool call's shape and parses its arguments into `GetWeather`."""
    question = "What is the weather in Paris? mock:tool=get_weather"
    messages = [{"role": "user", "content": question}]

    def ask():
        if not streamed:
            return client.chat.completions.parse(model=MODEL, messages=messages, tools=[STRICT_WEATHER_TOOL])
        with client.chat.completions.stream(
            model=MODEL, messages=messages, tools=[STRICT_WEATHER_TOOL],
            stream_options={"include_usage": True},
        ) as s:
            for _event in s:
                pass
            return s.get_final_completion()

    first = ask()
    c = first.choices[0]
    expect(c.finish_reason == "tool_calls", f"finish_reason {c.finish_reason}")
    expect(c.message.content is None, f"content {c.message.content!r} beside a tool call")
    calls = c.message.tool_calls or []
    expect(len(calls) == 1, f"{len(calls)} tool calls")
    call = calls[0]
    expect(call.type == "function", f"type {call.type}")
    expect(call.id.startswith("call_"), f"tool call id {call.id!r}")
    expect(call.function.name == "get_weather", f"name {call.function.name!r}")
    expect(json.loads(call.function.arguments) == {"city": "Paris"}, f"arguments {call.function.arguments!r}")
    parsed = call.function.parsed_arguments
    expect(isinstance(parsed, GetWeather) and parsed.city == "Paris", f"parsed arguments {parsed!r}")
    # The mock streams a call as four pieces, and ends it with the end-of-sequence token.
    check_usage(first.usage, words(question), 4 + EOS)
    tool = {"name": call.function.name, "id": call.id, "arguments": call.function.arguments}
    record(call_id(first.id), streamed, first.usage, tool=tool)

    messages.append(
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": call.id, "type": "function",
                 "function": {"name": call.function.name, "arguments": call.function.arguments}}
            ],
        }
    )
    messages.append({"role": "tool", "tool_call_id": call.id, "content": json.dumps({"temp_c": 21})})
    second = ask()
    c2 = second.choices[0]
    expect(c2.finish_reason == "stop", f"finish_reason after the tool result {c2.finish_reason}")
    expect("21" in (c2.message.content or ""), f"the answer {c2.message.content!r} does not use the result")
    expect(not c2.message.tool_calls, "another tool call after the tool result")
    record(call_id(second.id), streamed, second.usage)


@check("tool round trip, not streamed")
def _():
    tool_round(False)


@check("tool round trip, streamed")
def _():
    tool_round(True)


def expect_error(cls, status, fn, code=None, says=None, forbidden=()):
    try:
        fn()
    except cls as e:
        expect(e.status_code == status, f"status {e.status_code}, expected {status}")
        if code is not None:
            expect(e.code == code, f"code {e.code!r}, expected {code!r}")
        message = e.body.get("message", "") if isinstance(e.body, dict) else ""
        if says is not None:
            expect(says in message, f"message {message!r} does not say {says!r}")
        for secret in forbidden:
            expect(secret not in str(e) and secret not in message, "the error shows the key")
        return
    raise AssertionError(f"no {cls.__name__}")


def wrong_key():
    """A key of the right form whose secret is wrong."""
    last = KEY[-1]
    return KEY[:-1] + ("a" if last != "a" else "b")


@check("wrong key is AuthenticationError 401")
def _():
    bad = openai.OpenAI(base_url=BASE_URL, api_key=wrong_key(), max_retries=0)
    expect_error(
        openai.AuthenticationError, 401,
        lambda: bad.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}]),
        code="invalid_api_key", says="Incorrect API key provided", forbidden=(wrong_key(), KEY),
    )
    expect_error(openai.AuthenticationError, 401, lambda: bad.models.list(), code="invalid_api_key")


@check("revoked key is AuthenticationError 401")
def _():
    revoked = openai.OpenAI(base_url=BASE_URL, api_key=REVOKED_KEY, max_retries=0)
    expect_error(
        openai.AuthenticationError, 401,
        lambda: revoked.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], stream=True
        ),
        code="revoked_api_key", says="revoked", forbidden=(REVOKED_KEY,),
    )


@check("unknown model is NotFoundError 404 model_not_found")
def _():
    expect_error(
        openai.NotFoundError, 404,
        lambda: client.chat.completions.create(
            model="no-such-model", messages=[{"role": "user", "content": "hi"}]
        ),
        code="model_not_found", says="no-such-model",
    )


@check("temperature 5 is BadRequestError 400")
def _():
    def go():
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], temperature=5
        )

    expect_error(openai.BadRequestError, 400, go)
    try:
        go()
    except openai.BadRequestError as e:
        expect(e.param == "temperature", f"param {e.param!r}")


if failures:
    print(f"{len(failures)} checks failed: {', '.join(failures)}", flush=True)
    sys.exit(1)
print("python sdk checks passed", flush=True)
