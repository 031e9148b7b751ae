import json

import pytest

from batch_pipeline.results.outputs import OutputParseError, parse_output_line

EMPTY = {
    "id": None,
    "prediction": None,
    "labels": None,
    "scores": None,
    "error": None,
    "input_tokens": None,
    "output_tokens": None,
}


def expected(**fields):
    return {**EMPTY, **fields}


# ---------------------------------------------------------------- SageMaker


def test_jumpstart_python_literal_line_as_in_the_article():
    line = "{'id': 0, 'generated_texts': ['The Palestinian Authority officially became a member of the ICC.']}\n"
    assert parse_output_line(line) == expected(
        id=0, prediction="The Palestinian Authority officially became a member of the ICC."
    )


def test_python_literal_with_quotes_and_true_none_inside():
    line = repr({"id": "a-1", "generated_texts": ['He said "no" and it\'s done', "second"], "flag": True, "x": None})
    assert parse_output_line(line) == expected(id="a-1", prediction='He said "no" and it\'s done')


def test_json_text2text_line_and_bytes_input():
    line = json.dumps({"id": 7, "generated_texts": ["ok"]}).encode()
    assert parse_output_line(line) == expected(id=7, prediction="ok")


def test_generated_text_string_variant():
    assert parse_output_line('{"id": "x", "generated_text": "hello"}') == expected(id="x", prediction="hello")


def test_zero_shot_line_takes_the_top_label_even_if_unsorted():
    line = json.dumps(
        {"sequence": "I will run more", "labels": ["finance", "health", "career"], "scores": [0.2, 0.7, 0.1]}
    )
    assert parse_output_line(line) == expected(
        prediction="health", labels=["finance", "health", "career"], scores=[0.2, 0.7, 0.1]
    )


def test_zero_shot_python_literal_and_one_element_list():
    line = repr([{"sequence": "s", "labels": ["a", "b"], "scores": [0.9, 0.1]}])
    assert parse_output_line(line)["prediction"] == "a"


@pytest.mark.parametrize(
    "line, words",
    [
        ('{"sequence": "s", "labels": ["a"], "scores": [0.1, 0.9]}', "1 labels and 2 scores"),
        ('{"sequence": "s", "labels": ["a"], "scores": ["high"]}', "must be numbers"),
        ('{"id": 1, "generated_texts": []}', "non-empty list"),
    ],
)
def test_malformed_sagemaker_lines_name_the_problem(line, words):
    with pytest.raises(OutputParseError, match=words):
        parse_output_line(line)


# ---------------------------------------------------------------- Bedrock


def test_bedrock_anthropic_messages_output_with_usage():
    line = json.dumps(
        {
            "recordId": "CALL0000001",
            "modelInput": {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 100, "messages": []},
            "modelOutput": {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "content": [{"type": "text", "text": "A short summary."}],
                "stop_reason": "end_turn",
                "usage": {"input_tokens": 120, "output_tokens": 9},
            },
        }
    )
    assert parse_output_line(line) == expected(
        id="CALL0000001", prediction="A short summary.", input_tokens=120, output_tokens=9
    )


def test_bedrock_anthropic_skips_a_leading_thinking_block():
    output = {"content": [{"type": "thinking", "thinking": "hmm"}, {"type": "text", "text": "answer"}], "usage": {}}
    line = json.dumps({"recordId": "r", "modelInput": {}, "modelOutput": output})
    assert parse_output_line(line)["prediction"] == "answer"


def test_bedrock_nova_output():
    output = {
        "output": {"message": {"role": "assistant", "content": [{"text": "Nova says hi"}]}},
        "stopReason": "end_turn",
        "usage": {"inputTokens": 11, "outputTokens": 4, "totalTokens": 15},
    }
    line = json.dumps({"recordId": "n1", "modelInput": {}, "modelOutput": output})
    assert parse_output_line(line) == expected(id="n1", prediction="Nova says hi", input_tokens=11, output_tokens=4)


def test_bedrock_titan_line_exactly_as_documented_with_mixed_quotes():
    # The Bedrock user guide's own example mixes JSON and Python quoting in one line.
    line = (
        '{ "recordId" : "3223593EFGH", "modelInput" : {"inputText": "Roses are red, violets are"}, '
        "\"modelOutput\" : {'inputTextTokenCount': 8, 'results': [{'tokenCount': 3, 'outputText': 'blue\\n', "
        "'completionReason': 'FINISH'}]}}"
    )
    assert parse_output_line(line) == expected(id="3223593EFGH", prediction="blue\n", input_tokens=8, output_tokens=3)


def test_bedrock_error_record():
    line = (
        '{ "recordId" : "1223213ABCD", "modelInput" : {"inputText": "Hello world"}, '
        '"error" : {"errorCode" : 400, "errorMessage" : "bad request" }}'
    )
    assert parse_output_line(line) == expected(id="1223213ABCD", error={"code": "400", "message": "bad request"})


def test_bedrock_unknown_model_output_names_its_keys():
    line = json.dumps({"recordId": "r", "modelInput": {}, "modelOutput": {"generation": "llama text"}})
    with pytest.raises(OutputParseError, match=r"\['generation'\]"):
        parse_output_line(line)


# ---------------------------------------------------------------- our own predictions.jsonl


def test_our_prediction_line_round_trips_including_zero_shot_fields():
    line = json.dumps(
        {"id": "line-3", "prediction": "b", "labels": ["b", "a"], "scores": [0.6, 0.4], "label": "a", "input_tokens": 5}
    )
    assert parse_output_line(line) == expected(
        id="line-3", prediction="b", labels=["b", "a"], scores=[0.6, 0.4], input_tokens=5
    )


def test_our_prediction_line_with_error_object():
    line = json.dumps({"id": 4, "prediction": None, "error": {"code": "no-output", "message": "no output line"}})
    assert parse_output_line(line) == expected(id=4, error={"code": "no-output", "message": "no output line"})


# ---------------------------------------------------------------- what is refused


@pytest.mark.parametrize(
    "line, words",
    [
        ("", "empty"),
        ("   \n", "empty"),
        ("not a dict at all", "neither JSON nor a Python literal"),
        ("[1, 2]", "expected an object"),
        ('{"hello": 1}', r"unrecognised output line with keys \['hello'\]"),
        (b"\xff\xfe", "not UTF-8"),
    ],
)
def test_refused_lines_raise_a_value_error_naming_what_arrived(line, words):
    with pytest.raises(OutputParseError, match=words) as caught:
        parse_output_line(line)
    assert isinstance(caught.value, ValueError)


def test_python_expressions_are_never_evaluated():
    # literal_eval refuses calls; eval would have run this.
    with pytest.raises(OutputParseError):
        parse_output_line("__import__('os').system('echo pwned')")
    with pytest.raises(OutputParseError):
        parse_output_line("{'id': 1, 'generated_texts': [open('/etc/passwd').read()]}")


def test_converse_output_reads_the_first_text_block_and_camel_case_usage():
    from batch_pipeline.results.outputs import parse_output_line

    line = {
        "recordId": "c1",
        "modelInput": {"messages": []},
        "modelOutput": {
            "output": {
                "message": {
                    "role": "assistant",
                    "content": [{"reasoningContent": {"reasoningText": {"text": "thinking"}}}, {"text": "The answer."}],
                }
            },
            "stopReason": "end_turn",
            "usage": {"inputTokens": 12, "outputTokens": 3, "totalTokens": 15},
            "metrics": {"latencyMs": 120},
        },
    }
    parsed = parse_output_line(json.dumps(line))
    assert (parsed["id"], parsed["prediction"], parsed["input_tokens"], parsed["output_tokens"]) == (
        "c1",
        "The answer.",
        12,
        3,
    )


def test_converse_output_without_a_text_block_names_the_stop_reason():
    import pytest

    from batch_pipeline.results.outputs import OutputParseError, parse_output_line

    line = {
        "recordId": "c2",
        "modelOutput": {
            "output": {"message": {"role": "assistant", "content": []}},
            "stopReason": "content_filtered",
            "usage": {},
        },
    }
    with pytest.raises(OutputParseError, match="content_filtered"):
        parse_output_line(json.dumps(line))
