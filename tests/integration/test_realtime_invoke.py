"""invoke_batch against moto's InvokeEndpoint; stream() against botocore parsing a real event-stream response.

moto answers InvokeEndpoint from a queue of results (POST /moto-api/static/sagemaker/endpoint-results)
and remembers which request body took which result, so tests can check the join of answers to
inputs however the threads interleave. moto has no InvokeEndpointWithResponseStream, so stream()
runs a real boto3 client whose HTTP response is an AWS event-stream we encode here; botocore
decodes it exactly as it would a live endpoint's.
"""

from __future__ import annotations

import binascii
import json
import struct
import threading
import time
from itertools import pairwise

import boto3
import pytest
import requests
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from moto import mock_aws

from batch_pipeline_local import realtime
from batch_pipeline_local.cli import main as cli
from batch_pipeline_local.emulator.moto_hooks import invoke_endpoint_answers
from batch_pipeline_local.realtime import RealtimeError, StreamError, invoke_batch, plan_requests, stream

ENDPOINT = "flan-t5-realtime"
MOTO_RESULTS_URL = "http://motoapi.amazonaws.com/moto-api/static/sagemaker/endpoint-results"


@pytest.fixture
def runtime():
    with mock_aws():
        yield boto3.client("sagemaker-runtime", region_name="us-east-1")


def queue_results(bodies: list) -> None:
    results = [{"Body": b if isinstance(b, str) else json.dumps(b), "ContentType": "application/json"} for b in bodies]
    response = requests.post(MOTO_RESULTS_URL, json={"results": results}, timeout=5)
    assert response.status_code == 201


def recorded_requests() -> list[tuple[dict, str]]:
    """(request body, response body) for every distinct request moto answered."""
    pairs = []
    for request, body in invoke_endpoint_answers("123456789012", "us-east-1"):
        assert request["Accept"] == "application/json"
        pairs.append((json.loads(request["Body"]), body))
    return pairs


def texts(count: int) -> list[str]:
    return [f"Briefly summarize this text: article {i} {'é' * (i % 5)}" for i in range(count)]


# ---------------------------------------------------------------- invoke_batch on moto


def test_one_request_for_a_short_list(runtime):
    queue_results([{"generated_texts": ["summary 0", "summary 1", "summary 2"]}])
    outputs = invoke_batch(ENDPOINT, texts(3), client=runtime, max_length=50, do_sample=True)
    assert outputs == ["summary 0", "summary 1", "summary 2"]
    [(request, _)] = recorded_requests()
    assert request == {"text_inputs": texts(3), "max_length": 50, "do_sample": True}


def test_long_list_is_chunked_in_order_sequentially(runtime):
    inputs = texts(10)
    # With one worker the requests reach moto in order, so the queue answers them in order.
    queue_results(
        [{"generated_texts": [f"out {i}" for i in chunk]} for chunk in ([0, 1, 2], [3, 4, 5], [6, 7, 8], [9])]
    )
    outputs = invoke_batch(ENDPOINT, inputs, client=runtime, max_concurrency=1, max_texts_per_request=3, top_k=50)
    assert outputs == [f"out {i}" for i in range(10)]
    sent = [request["text_inputs"] for request, _ in recorded_requests()]
    assert sent == [inputs[0:3], inputs[3:6], inputs[6:9], inputs[9:10]]
    assert all(request["top_k"] == 50 for request, _ in recorded_requests())


def test_concurrent_requests_join_answers_to_their_inputs(runtime):
    inputs = texts(48)
    # Answers name the queue slot, not the input: which request takes which slot depends on thread
    # timing, so every request carries four inputs and any slot fits any request.
    queue_results([{"generated_texts": [f"slot {slot} item {k}" for k in range(4)]} for slot in range(12)])
    outputs = invoke_batch(ENDPOINT, inputs, client=runtime, max_concurrency=4, max_texts_per_request=4)

    answer_for = {}
    for request, response in recorded_requests():
        for text, answer in zip(request["text_inputs"], json.loads(response)["generated_texts"], strict=True):
            answer_for[text] = answer
    assert len(answer_for) == 48
    assert outputs == [answer_for[text] for text in inputs]
    assert len(set(outputs)) == 48


def test_requests_fit_the_payload_limit(runtime):
    inputs = [("日本語 " * (5 + i % 7)) + str(i) for i in range(40)]
    limit = 300
    plan = plan_requests(inputs, {"max_length": 20}, max_payload_bytes=limit, max_texts_per_request=1000)
    assert len(plan) > 4
    queue_results([{"generated_texts": [f"o{i}" for i in span]} for span in plan])
    outputs = invoke_batch(
        ENDPOINT,
        inputs,
        client=runtime,
        max_concurrency=1,
        max_payload_bytes=limit,
        max_texts_per_request=1000,
        max_length=20,
    )
    assert outputs == [f"o{i}" for i in range(40)]
    bodies = [
        json.dumps(request, ensure_ascii=False, separators=(",", ":")).encode() for request, _ in recorded_requests()
    ]
    assert all(len(body) <= limit for body in bodies)
    # Greedy packing: adding the next input to any request would have broken the limit.
    sent = [request["text_inputs"] for request, _ in recorded_requests()]
    for batch, following in pairwise(sent):
        grown = json.dumps(
            {"text_inputs": [*batch, following[0]], "max_length": 20}, ensure_ascii=False, separators=(",", ":")
        )
        assert len(grown.encode()) > limit


def test_planned_requests_are_exactly_at_most_the_limit_and_greedy():
    import random

    rng = random.Random(7)
    alphabet = ["a", "é", "日", "🙂", '"', "\\", "\n"]
    for trial in range(200):
        inputs = ["".join(rng.choices(alphabet, k=rng.randint(0, 30))) for _ in range(rng.randint(1, 40))]
        params = {"max_length": rng.randint(1, 500)}
        limit = rng.randint(160, 600)
        per_request = rng.randint(1, 12)
        plan = plan_requests(inputs, params, max_payload_bytes=limit, max_texts_per_request=per_request)
        assert [i for span in plan for i in span] == list(range(len(inputs)))
        for span, following in zip(plan, [*plan[1:], None], strict=True):
            body = realtime._dumps({"text_inputs": [inputs[i] for i in span], **params})
            assert len(body) <= limit, f"trial {trial}"
            assert len(span) <= per_request
            if following is not None and len(span) < per_request:
                grown = realtime._dumps(
                    {"text_inputs": [inputs[i] for i in span] + [inputs[following.start]], **params}
                )
                assert len(grown) > limit, f"trial {trial}: request {span} could have taken one more input"


def test_a_text_too_large_alone_fails_before_any_request(runtime):
    with pytest.raises(ValueError, match=r"texts\[1\] needs a \d+-byte request on its own, over the 100-byte"):
        invoke_batch(ENDPOINT, ["short", "x" * 200], client=runtime, max_payload_bytes=100)
    assert recorded_requests() == []


def test_wrong_number_of_outputs_is_a_clear_error(runtime):
    queue_results([{"generated_texts": ["only one", "only two"]}])
    with pytest.raises(RealtimeError, match=r"inputs 0\.\.2: endpoint returned 2 outputs for 3 inputs: .*only one"):
        invoke_batch(ENDPOINT, texts(3), client=runtime)


@pytest.mark.parametrize(
    "body",
    [
        "{'generated_texts': ['a', 'b']}",  # Python literal, as JumpStart containers sometimes write
        {"generated_texts": [["a"], ["b"]]},  # one list per input
        [{"generated_text": "a"}, {"generated_text": "b"}],  # Hugging Face pipeline style
        [[{"generated_text": "a"}], [{"generated_text": "b"}]],
        [{"generated_texts": ["a"]}, {"generated_texts": ["b"]}],
    ],
)
def test_jumpstart_response_shapes(runtime, body):
    queue_results([body])
    assert invoke_batch(ENDPOINT, ["first", "second"], client=runtime) == ["a", "b"]


def test_several_sequences_per_input(runtime):
    queue_results([{"generated_texts": [["a1", "a2"], ["b1", "b2"]]}, {"generated_texts": ["c1", "c2"]}])
    outputs = invoke_batch(
        ENDPOINT,
        ["a", "b", "c"],
        client=runtime,
        max_concurrency=1,
        max_texts_per_request=2,
        num_return_sequences=2,
        num_beams=2,
    )
    assert outputs == [["a1", "a2"], ["b1", "b2"], ["c1", "c2"]]


@pytest.mark.parametrize("body", ["not json at all", {"predictions": ["a"]}, {"generated_texts": [1, 2]}])
def test_unknown_response_shapes_raise(runtime, body):
    queue_results([body])
    with pytest.raises(RealtimeError, match="inputs 0..1"):
        invoke_batch(ENDPOINT, ["first", "second"], client=runtime)


def test_empty_input_sends_nothing(runtime):
    assert invoke_batch(ENDPOINT, [], client=runtime) == []
    assert recorded_requests() == []


def test_model_error_names_the_inputs_and_stops_later_requests():
    client = boto3.client("sagemaker-runtime", region_name="us-east-1")
    with Stubber(client) as stubber:
        body = json.dumps({"generated_texts": ["x", "y"]}).encode()
        stubber.add_response("invoke_endpoint", {"Body": _streaming(body), "ContentType": "application/json"})
        stubber.add_client_error(
            "invoke_endpoint", "ModelError", "Received client error (400) from primary", http_status_code=424
        )
        with pytest.raises(ClientError) as caught:
            invoke_batch(ENDPOINT, texts(6), client=client, max_concurrency=1, max_texts_per_request=2)
        stubber.assert_no_pending_responses()  # no third request was queued, and none was made
    assert caught.value.response["Error"]["Code"] == "ModelError"
    assert "request for inputs 2..3" in "".join(caught.value.__notes__)


class _SlowEchoClient:
    """Answers each request with its own inputs, later requests first, to scramble completion order."""

    def __init__(self):
        self.calls = 0
        self.lock = threading.Lock()

    def invoke_endpoint(self, **kwargs):
        request = json.loads(kwargs["Body"])
        with self.lock:
            self.calls += 1
        # Requests carrying early inputs take longest, so they complete last.
        time.sleep(0.002 * (100 - int(request["text_inputs"][0].split()[-1])) / 10)
        answer = {"generated_texts": [f"echo {text}" for text in request["text_inputs"]]}
        return {"Body": _streaming(json.dumps(answer).encode())}


def test_out_of_order_completion_keeps_input_order():
    inputs = [f"input {i}" for i in range(100)]
    client = _SlowEchoClient()
    outputs = invoke_batch(ENDPOINT, inputs, client=client, max_concurrency=8, max_texts_per_request=3)
    assert outputs == [f"echo {text}" for text in inputs]
    assert client.calls == 34


def _streaming(data: bytes):
    import io

    from botocore.response import StreamingBody

    return StreamingBody(io.BytesIO(data), len(data))


# ---------------------------------------------------------------- stream() through botocore's event-stream parser


def _header(name: str, value: str) -> bytes:
    encoded = value.encode()
    return bytes([len(name)]) + name.encode() + b"\x07" + struct.pack(">H", len(encoded)) + encoded


def event_message(headers: dict[str, str], payload: bytes) -> bytes:
    """One message of the AWS event-stream encoding (prelude, headers, payload, CRC32s)."""
    header_bytes = b"".join(_header(k, v) for k, v in headers.items())
    total = 12 + len(header_bytes) + len(payload) + 4
    prelude = struct.pack(">II", total, len(header_bytes))
    prelude += struct.pack(">I", binascii.crc32(prelude) & 0xFFFFFFFF)
    message = prelude + header_bytes + payload
    return message + struct.pack(">I", binascii.crc32(message) & 0xFFFFFFFF)


def payload_part(data: bytes) -> bytes:
    return event_message(
        {":message-type": "event", ":event-type": "PayloadPart", ":content-type": "application/octet-stream"}, data
    )


def model_stream_error(message: str) -> bytes:
    return event_message(
        {":message-type": "exception", ":exception-type": "ModelStreamError", ":content-type": "application/json"},
        json.dumps({"Message": message, "ErrorCode": "ModelError"}).encode(),
    )


class _RawStream:
    def __init__(self, chunks: list[bytes]):
        self.chunks = chunks
        self.closed = False

    def stream(self, **_):
        yield from self.chunks

    def close(self):
        self.closed = True


def streaming_client(wire_chunks: list[bytes]):
    """A real sagemaker-runtime client whose HTTP layer returns `wire_chunks`; records the request sent."""
    client = boto3.client("sagemaker-runtime", region_name="us-east-1")
    sent = {}
    raw = _RawStream(wire_chunks)

    def respond(request, **_):
        sent["url"] = request.url
        sent["body"] = json.loads(request.body)
        sent["headers"] = dict(request.headers)
        headers = {
            "Content-Type": "application/vnd.amazon.eventstream",
            "X-Amzn-SageMaker-Content-Type": "text/event-stream",
        }
        return AWSResponse(request.url, 200, headers, raw)

    client.meta.events.register("before-send.sagemaker-runtime.InvokeEndpointWithResponseStream", respond)
    return client, sent, raw


def tgi_sse(text: str, special: bool = False) -> bytes:
    token = {
        "token": {"id": 1, "text": text, "logprob": -0.5, "special": special},
        "generated_text": None,
        "details": None,
    }
    return b"data:" + json.dumps(token, ensure_ascii=False).encode() + b"\n\n"


def test_stream_sends_tgi_request_and_yields_tokens():
    tgi_bytes = tgi_sse(" Building") + tgi_sse(" a") + tgi_sse(" website 🌐") + tgi_sse("<|endoftext|>", special=True)
    # The payload is cut into event messages mid-line and mid-character; the wire cuts messages too.
    emoji_at = tgi_bytes.index("🌐".encode())
    parts = [tgi_bytes[:7], tgi_bytes[7 : emoji_at + 2], tgi_bytes[emoji_at + 2 : -30], tgi_bytes[-30:]]
    wire = b"".join(payload_part(p) for p in parts)
    client, sent, raw = streaming_client([wire[:10], wire[10:77], wire[77:]])

    tokens = list(
        stream(
            "falcon-7b-instruct-stream", "How do I build a website?", client=client, max_new_tokens=64, temperature=0.7
        )
    )

    assert tokens == [" Building", " a", " website 🌐"]
    assert sent["body"] == {
        "inputs": "How do I build a website?",
        "parameters": {"max_new_tokens": 64, "temperature": 0.7},
        "stream": True,
    }
    assert sent["url"].endswith("/endpoints/falcon-7b-instruct-stream/invocations-response-stream")
    assert sent["headers"]["Content-Type"] in ("application/json", b"application/json")
    assert raw.closed


def test_stream_include_special():
    client, _, _ = streaming_client([payload_part(tgi_sse("Hi") + tgi_sse("</s>", special=True))])
    assert list(stream("e", "hello", client=client, include_special=True)) == ["Hi", "</s>"]


def test_model_stream_error_becomes_stream_error_after_earlier_tokens():
    client, _, raw = streaming_client([payload_part(tgi_sse("Hi")), model_stream_error("CUDA out of memory")])
    received = []
    with pytest.raises(StreamError, match=r"endpoint 'e' stream failed: ModelStreamError: 'CUDA out of memory'"):
        for token in stream("e", "hello", client=client):
            received.append(token)
    assert received == ["Hi"]
    assert raw.closed


def test_tgi_error_line_becomes_stream_error():
    error_line = (
        b'data:{"error":"Request failed during generation: Server error: out of memory","error_type":"generation"}\n\n'
    )
    client, _, _ = streaming_client([payload_part(tgi_sse("Hi") + error_line)])
    with pytest.raises(StreamError, match="endpoint reported generation: 'Request failed during generation"):
        list(stream("e", "hello", client=client))


def test_stream_fails_at_call_time_for_a_bad_request():
    client = boto3.client("sagemaker-runtime", region_name="us-east-1")
    with Stubber(client) as stubber:
        stubber.add_client_error(
            "invoke_endpoint_with_response_stream", "ValidationError", "Endpoint e not found.", http_status_code=400
        )
        with pytest.raises(ClientError, match="Endpoint e not found"):
            stream("e", "hello", client=client)


# ---------------------------------------------------------------- CLI


def test_cli_invoke_writes_outputs_in_input_order(runtime, tmp_path, monkeypatch, capsys):
    source = tmp_path / "input.jsonl"
    lines = [
        {"id": "a", "text_inputs": "Summarize: one", "reference": "not sent"},
        {"text_inputs": "Summarize: two"},
        {"id": 7, "prompt": "Summarize: three", "max_length": 10},
        {"id": "d", "text_inputs": "Summarize: four"},
    ]
    source.write_text("\n".join(json.dumps(line) for line in lines) + "\n\n")
    # Lines 1, 2 and 4 share parameters, so they go together; line 3 has its own max_length.
    queue_results([{"generated_texts": ["one", "two", "four"]}, {"generated_texts": ["three"]}])
    monkeypatch.setattr(realtime, "runtime_client", lambda region=None, max_concurrency=1: runtime)
    output = tmp_path / "out.jsonl"

    code = cli.main(
        [
            "invoke",
            "--endpoint",
            ENDPOINT,
            "--file",
            str(source),
            "--output",
            str(output),
            "--param",
            "max_length=50",
            "--param",
            "do_sample=false",
            "--max-concurrency",
            "1",
        ]
    )

    assert code == 0
    assert [json.loads(line) for line in output.read_text().splitlines()] == [
        {"id": "a", "index": 0, "generated_text": "one"},
        {"id": "line-2", "index": 1, "generated_text": "two"},
        {"id": 7, "index": 2, "generated_text": "three"},
        {"id": "d", "index": 3, "generated_text": "four"},
    ]
    sent = [request for request, _ in recorded_requests()]
    assert sent == [
        {"text_inputs": ["Summarize: one", "Summarize: two", "Summarize: four"], "max_length": 50, "do_sample": False},
        {"text_inputs": ["Summarize: three"], "max_length": 10, "do_sample": False},
    ]


def test_cli_invoke_rejects_bad_lines_without_sending(runtime, tmp_path, monkeypatch, capsys):
    source = tmp_path / "input.jsonl"
    source.write_text('{"id": 1, "text_inputs": "ok"}\n{"id": 2}\nnot json\n{"id": [1], "prompt": "x"}\n')
    monkeypatch.setattr(realtime, "runtime_client", lambda region=None, max_concurrency=1: runtime)
    code = cli.main(["invoke", "--endpoint", ENDPOINT, "--file", str(source)])
    assert code == 1
    err = capsys.readouterr().err
    assert "3 bad input line(s), nothing sent" in err
    assert "line 2: needs a non-empty string 'text_inputs' or 'prompt'" in err
    assert "line 3: not JSON" in err
    assert "line 4: id must be a string or an integer" in err
    assert recorded_requests() == []


def test_cli_invoke_reports_a_count_mismatch(runtime, tmp_path, monkeypatch, capsys):
    source = tmp_path / "input.jsonl"
    source.write_text('{"text_inputs": "one"}\n{"text_inputs": "two"}\n')
    queue_results([{"generated_texts": ["just one"]}])
    monkeypatch.setattr(realtime, "runtime_client", lambda region=None, max_concurrency=1: runtime)
    assert cli.main(["invoke", "--endpoint", ENDPOINT, "--file", str(source)]) == 1
    assert "endpoint returned 1 outputs for 2 inputs" in capsys.readouterr().err


def test_cli_stream_prints_tokens(monkeypatch, capsys):
    client, sent, _ = streaming_client(
        [payload_part(tgi_sse("Hello") + tgi_sse(" 世界") + tgi_sse("</s>", special=True))]
    )
    monkeypatch.setattr(realtime, "runtime_client", lambda region=None, max_concurrency=1: client)
    code = cli.main(
        ["stream", "--endpoint", "e", "--prompt", "Say hello", "--max-new-tokens", "8", "--param", 'stop=["</s>"]']
    )
    assert code == 0
    assert capsys.readouterr().out == "Hello 世界\n"
    assert sent["body"]["parameters"] == {"max_new_tokens": 8, "stop": ["</s>"]}


def test_cli_stream_reports_stream_errors(monkeypatch, capsys):
    client, _, _ = streaming_client([payload_part(tgi_sse("Hi")), model_stream_error("boom")])
    monkeypatch.setattr(realtime, "runtime_client", lambda region=None, max_concurrency=1: client)
    assert cli.main(["stream", "--endpoint", "e", "--prompt", "x"]) == 1
    captured = capsys.readouterr()
    assert captured.out == "Hi\n"
    assert "ModelStreamError: 'boom'" in captured.err


@pytest.mark.parametrize("command", ["invoke", "stream"])
def test_cli_help_describes_the_command(command, capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main([command, "--help"])
    assert exited.value.code == 0
    assert "Exit status" in capsys.readouterr().out
