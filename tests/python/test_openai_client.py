"""The official `openai` client against `lmhost serve` with SmolLM2.

Usage: python3 tests/python/test_openai_client.py BASE_URL   (e.g. http://127.0.0.1:8080/v1)

Run by tests/integration/openai_client.rs, which starts the server. Exits non-zero on
the first failed check.
"""

import sys

import openai

MODEL = "SmolLM2-135M-Instruct"
QUESTION = [{"role": "user", "content": "What is the capital of France? Answer in one sentence."}]


def main(base_url: str) -> None:
    client = openai.OpenAI(base_url=base_url, api_key="not-needed", max_retries=0, timeout=120)

    ids = [m.id for m in client.models.list()]
    assert MODEL in ids, ids
    print(f"models: {len(ids)} listed")

    whole = client.chat.completions.create(model=MODEL, messages=QUESTION, max_tokens=40, temperature=0)
    answer = whole.choices[0].message.content
    assert "Paris" in answer, answer
    assert whole.model == MODEL, whole.model
    assert whole.id.startswith("chatcmpl-"), whole.id
    assert whole.choices[0].finish_reason in ("stop", "length"), whole.choices[0].finish_reason
    assert whole.usage.total_tokens == whole.usage.prompt_tokens + whole.usage.completion_tokens, whole.usage
    print(f"chat: {answer!r}")

    pieces = []
    usage = None
    stream = client.chat.completions.create(
        model=MODEL,
        messages=QUESTION,
        max_tokens=40,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.content:
                pieces.append(choice.delta.content)
    streamed = "".join(pieces)
    assert streamed == answer, (streamed, answer)
    assert len(pieces) > 1, pieces
    assert usage is not None and usage.completion_tokens == whole.usage.completion_tokens, usage
    print(f"stream: {len(pieces)} chunks concatenate to the same answer")

    # lmhost's extra fields: timings always, clembench's prompt and raw
    # response on request; the client keeps them as extras.
    extra = client.chat.completions.create(
        model=MODEL, messages=QUESTION, max_tokens=40, temperature=0, extra_body={"return_prompt": True}
    )
    timings = extra.model_extra["timings"]
    assert timings["total_ms"] >= timings["generation_ms"] > 0, timings
    lm = extra.model_extra["lmhost"]
    assert lm["prompt"].startswith("<|im_start|>") and lm["prompt"].endswith("<|im_start|>assistant\n"), lm
    assert QUESTION[0]["content"] in lm["prompt"], lm
    assert lm["response"].startswith(answer.strip()), (lm, answer)
    assert "lmhost" not in whole.model_extra and "timings" in whole.model_extra, whole.model_extra
    print(f"extras: timings {timings['total_ms']:.0f} ms, prompt of {len(lm['prompt'])} characters")

    completion = client.completions.create(model=MODEL, prompt="Name a colour.", max_tokens=8, temperature=0)
    assert completion.choices[0].text.strip(), completion
    print(f"completions: {completion.choices[0].text!r}")

    try:
        client.chat.completions.create(model="no-such-model", messages=QUESTION)
    except openai.NotFoundError as e:
        assert e.status_code == 404
        print(f"unknown model: NotFoundError ({e.body['message'] if isinstance(e.body, dict) else e.body})")
    else:
        raise AssertionError("an unknown model must raise openai.NotFoundError")

    try:
        client.chat.completions.create(model=MODEL, messages=QUESTION, n=2)
    except openai.BadRequestError as e:
        assert e.status_code == 400
        print("n=2: BadRequestError")
    else:
        raise AssertionError("n=2 must raise openai.BadRequestError")

    structured_output(client)
    tool_calls(client)

    print("ok")


CITY = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "minLength": 1, "maxLength": 24},
        "population": {"type": "integer", "minimum": 0, "maximum": 100000000},
        "capital": {"type": "boolean"},
        "continent": {"enum": ["Africa", "America", "Asia", "Europe", "Oceania"]},
    },
    "required": ["city", "population", "capital", "continent"],
    "additionalProperties": False,
}
DESCRIBE = [{"role": "user", "content": "Describe Paris as JSON with city, population, capital and continent."}]


def check_city(text: str) -> None:
    """The answer satisfies CITY (checked by hand: no schema package needed)."""
    import json

    value = json.loads(text)
    assert isinstance(value, dict) and sorted(value) == ["capital", "city", "continent", "population"], value
    assert isinstance(value["city"], str) and 1 <= len(value["city"]) <= 24, value
    population = value["population"]
    assert isinstance(population, int) and not isinstance(population, bool) and 0 <= population <= 100000000, value
    assert isinstance(value["capital"], bool), value
    assert value["continent"] in CITY["properties"]["continent"]["enum"], value


def structured_output(client) -> None:
    """`response_format` json_schema: 20 answers sampled at temperature 0.8 all
    validate; the same streamed; json_object; a bad schema is a 400."""
    fmt = {"type": "json_schema", "json_schema": {"name": "city", "schema": CITY, "strict": True}}
    answers = set()
    for seed in range(20):
        r = client.chat.completions.create(
            model=MODEL, messages=DESCRIBE, max_tokens=128, temperature=0.8, seed=seed, response_format=fmt
        )
        assert r.choices[0].finish_reason == "stop", r
        check_city(r.choices[0].message.content)
        answers.add(r.choices[0].message.content)
    assert len(answers) > 1, answers
    print(f"json_schema: 20 sampled answers validate ({len(answers)} distinct)")

    whole = client.chat.completions.create(
        model=MODEL, messages=DESCRIBE, max_tokens=128, temperature=0.8, seed=3, response_format=fmt
    )
    pieces = []
    for chunk in client.chat.completions.create(
        model=MODEL, messages=DESCRIBE, max_tokens=128, temperature=0.8, seed=3, response_format=fmt, stream=True
    ):
        for choice in chunk.choices:
            if choice.delta.content:
                pieces.append(choice.delta.content)
    assert "".join(pieces) == whole.choices[0].message.content, (pieces, whole)
    check_city("".join(pieces))
    print(f"json_schema streamed: {len(pieces)} chunks equal the whole answer")

    obj = client.chat.completions.create(
        model=MODEL, messages=DESCRIBE, max_tokens=128, temperature=0, response_format={"type": "json_object"}
    )
    if obj.choices[0].finish_reason == "stop":
        import json

        assert isinstance(json.loads(obj.choices[0].message.content), dict), obj
    print(f"json_object: {obj.choices[0].message.content!r}")

    try:
        client.chat.completions.create(
            model=MODEL, messages=DESCRIBE, response_format={"type": "json_schema", "json_schema": {"name": "x"}}
        )
    except openai.BadRequestError as e:
        assert e.status_code == 400 and "response_format" in str(e.body), e.body
        print("json_schema without a schema: BadRequestError")
    else:
        raise AssertionError("a json_schema format without a schema must raise openai.BadRequestError")


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "minLength": 1, "maxLength": 40},
                "unit": {"enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city", "unit"],
            "additionalProperties": False,
        },
    },
}
CLOCK = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "The current time in a time zone.",
        "parameters": {
            "type": "object",
            "properties": {"zone": {"type": "string", "maxLength": 40}},
            "required": ["zone"],
            "additionalProperties": False,
        },
    },
}
WEATHER_QUESTION = [{"role": "user", "content": "What is the weather in Paris right now?"}]


def check_call(call) -> None:
    """A call of WEATHER or CLOCK whose arguments satisfy its schema (checked by hand)."""
    import json

    assert call.type == "function" and call.id.startswith("call_"), call
    args = json.loads(call.function.arguments)
    assert isinstance(args, dict), call
    if call.function.name == "get_weather":
        assert sorted(args) == ["city", "unit"], args
        assert isinstance(args["city"], str) and 1 <= len(args["city"]) <= 40, args
        assert args["unit"] in ("celsius", "fahrenheit"), args
    else:
        assert call.function.name == "get_time", call
        assert sorted(args) == ["zone"] and isinstance(args["zone"], str), args


def tool_calls(client) -> None:
    """`tool_choice` required and named: valid calls at temperature 0.8; a full
    round trip (call, result, answer); streamed calls accumulate to the whole."""
    tools = [WEATHER, CLOCK]
    for seed in range(5):
        r = client.chat.completions.create(
            model=MODEL,
            messages=WEATHER_QUESTION,
            tools=tools,
            tool_choice="required",
            max_tokens=96,
            temperature=0.8,
            seed=seed,
        )
        choice = r.choices[0]
        assert choice.finish_reason == "tool_calls", r
        assert choice.message.tool_calls and len(choice.message.tool_calls) == 1, r
        assert not choice.message.content, r
        check_call(choice.message.tool_calls[0])
    print("tool_choice required: 5 sampled calls validate")

    named = client.chat.completions.create(
        model=MODEL,
        messages=WEATHER_QUESTION,
        tools=tools,
        tool_choice={"type": "function", "function": {"name": "get_time"}},
        max_tokens=96,
        temperature=0.8,
        seed=1,
    )
    assert named.choices[0].message.tool_calls[0].function.name == "get_time", named
    check_call(named.choices[0].message.tool_calls[0])
    print(f"tool_choice named: {named.choices[0].message.tool_calls[0].function.arguments}")

    asked = client.chat.completions.create(
        model=MODEL, messages=WEATHER_QUESTION, tools=tools, tool_choice="required", max_tokens=96, temperature=0
    )
    call = asked.choices[0].message.tool_calls[0]
    history = WEATHER_QUESTION + [
        asked.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": '{"temperature": 21, "sky": "clear"}'},
    ]
    answer = client.chat.completions.create(
        model=MODEL, messages=history, tools=tools, tool_choice="none", max_tokens=32, temperature=0
    )
    assert answer.choices[0].message.content and not answer.choices[0].message.tool_calls, answer
    # The call and its result reached the prompt: it is longer than the question alone.
    alone = client.chat.completions.create(
        model=MODEL, messages=WEATHER_QUESTION, tools=tools, tool_choice="none", max_tokens=1, temperature=0
    )
    assert answer.usage.prompt_tokens > alone.usage.prompt_tokens + 20, (answer.usage, alone.usage)
    print(f"round trip: {call.function.name} -> {answer.choices[0].message.content!r}")

    whole = client.chat.completions.create(
        model=MODEL, messages=WEATHER_QUESTION, tools=tools, tool_choice="required", max_tokens=96, temperature=0.8, seed=3
    )
    # Accumulated as OpenAI's clients do: by index, arguments concatenated.
    calls = {}
    finish = None
    for chunk in client.chat.completions.create(
        model=MODEL,
        messages=WEATHER_QUESTION,
        tools=tools,
        tool_choice="required",
        max_tokens=96,
        temperature=0.8,
        seed=3,
        stream=True,
    ):
        for choice in chunk.choices:
            for delta in choice.delta.tool_calls or []:
                slot = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
                slot["id"] += delta.id or ""
                if delta.function:
                    slot["name"] += delta.function.name or ""
                    slot["arguments"] += delta.function.arguments or ""
            finish = choice.finish_reason or finish
    expected = [(c.function.name, c.function.arguments) for c in whole.choices[0].message.tool_calls]
    assert [(c["name"], c["arguments"]) for _, c in sorted(calls.items())] == expected, (calls, expected)
    assert all(c["id"].startswith("call_") for c in calls.values()), calls
    assert finish == "tool_calls", finish
    print(f"tool calls streamed: {len(calls)} call(s) equal the whole response")


if __name__ == "__main__":
    main(sys.argv[1])
