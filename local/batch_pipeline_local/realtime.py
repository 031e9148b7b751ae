"""Client for real-time SageMaker endpoints: batched text2text requests and TGI token streaming.

Two ways to call an endpoint that the pipeline's catalog models can serve:

- `invoke_batch`: JumpStart text2text "real-time batch inference" -- one request carries a list of
  `text_inputs` plus generation parameters and the response holds one generation per input. Long lists
  are cut into requests that fit the InvokeEndpoint payload limit and sent with bounded concurrency.
- `stream`: a Hugging Face TGI endpoint asked for `"stream": true` answers through
  InvokeEndpointWithResponseStream; `iter_tokens` turns that byte stream into token texts.

boto3 is imported only when no client is handed in, so importing this module stays cheap.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import Any

# InvokeEndpoint refuses request bodies over 6 MiB (botocore's model: Body max 6291456).
SAGEMAKER_PAYLOAD_LIMIT_BYTES = 6 * 1024 * 1024
# One MiB of headroom, so a limit change or a proxy in between does not turn into a failed run.
DEFAULT_MAX_PAYLOAD_BYTES = 5 * 1024 * 1024
DEFAULT_MAX_CONCURRENCY = 4
# A real-time invocation must answer within 60 seconds; a few dozen inputs per request keeps a
# FLAN-T5-sized model well inside that even when the payload limit would allow thousands.
DEFAULT_MAX_TEXTS_PER_REQUEST = 32

_SHOWN_CHARS = 200


class RealtimeError(RuntimeError):
    """An endpoint answered, but not with one output per input in a shape we know."""


class StreamError(RuntimeError):
    """A token stream carried an error, a malformed line, or ended in the middle of a line."""


def _shown(value: Any) -> str:
    """A bounded, printable rendering of what arrived, for error messages."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        value = bytes(value).decode("utf-8", errors="replace")
    text = value if isinstance(value, str) else repr(value)
    if len(text) > _SHOWN_CHARS:
        return repr(text[:_SHOWN_CHARS]) + f"... ({len(text)} chars)"
    return repr(text)


def runtime_client(region: str | None = None, max_concurrency: int = 1) -> Any:
    """A sagemaker-runtime client fit for `invoke_batch` with `max_concurrency` threads, or for `stream`."""
    # Deferred (see the module docstring): a caller that hands in its own client never loads boto3.
    import boto3
    from botocore.config import Config

    # A pool at least as large as the worker count, so threads never wait for a connection;
    # read timeout above the endpoint's own 60 s limit, so the server's answer wins.
    config = Config(
        retries={"mode": "standard", "max_attempts": 4},
        max_pool_connections=max(10, max_concurrency),
        read_timeout=70,
    )
    return boto3.client("sagemaker-runtime", region_name=region, config=config)


# ---------------------------------------------------------------- real-time batch requests


def _dumps(value: Any) -> bytes:
    # Compact and UTF-8 (not \u escapes), so the size we plan with is the size we send.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def plan_requests(
    texts: Sequence[str],
    params: dict[str, Any],
    *,
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
    max_texts_per_request: int = DEFAULT_MAX_TEXTS_PER_REQUEST,
) -> list[range]:
    """Cut `texts` into consecutive index ranges whose request bodies each fit `max_payload_bytes`.

    The body of a range r is exactly `{"text_inputs": [texts[i] for i in r], **params}` serialised
    by `_dumps`, so the planned size is the sent size. Raises ValueError for a text that cannot fit
    even alone.
    """
    if max_texts_per_request < 1:
        raise ValueError("max_texts_per_request must be at least 1")
    empty_body = len(_dumps({"text_inputs": [], **params}))
    ranges: list[range] = []
    start, size = 0, empty_body
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"texts[{index}] is {type(text).__name__}, not str")
        item = len(_dumps(text))
        if empty_body + item > max_payload_bytes:
            raise ValueError(
                f"texts[{index}] needs a {empty_body + item}-byte request on its own, over the "
                f"{max_payload_bytes}-byte payload limit; shorten it or send it elsewhere"
            )
        separator = 1 if index > start else 0
        if index > start and (size + separator + item > max_payload_bytes or index - start >= max_texts_per_request):
            ranges.append(range(start, index))
            start, size, separator = index, empty_body, 0
        size += separator + item
    if start < len(texts):
        ranges.append(range(start, len(texts)))
    return ranges


def _load_body(raw: bytes) -> Any:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise RealtimeError(f"response is not UTF-8 text: {_shown(raw)}") from None
    try:
        return json.loads(text)
    except ValueError:
        pass
    # JumpStart containers sometimes answer with a Python-literal dict; literal_eval never runs code.
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        raise RealtimeError(f"response is neither JSON nor a Python literal: {_shown(text)}") from None


def _texts_of(item: Any) -> list[str] | None:
    """The generations for one input: a string, a list of strings, or {'generated_text(s)': ...}."""
    if isinstance(item, str):
        return [item]
    if isinstance(item, dict):
        for key in ("generated_texts", "generated_text"):
            if key in item:
                return _texts_of(item[key])
        return None
    if isinstance(item, list) and item:
        found = [_texts_of(element) for element in item]
        if all(texts is not None and len(texts) == 1 for texts in found):
            return [texts[0] for texts in found]  # type: ignore[index]
    return None


def parse_generations(body: Any, count: int, sequences: int = 1) -> list[list[str]]:
    """One list of generated texts per input, from any JumpStart/Hugging Face text2text response shape.

    Accepted (n = `count` inputs, k = `sequences` per input):
      {"generated_texts": ["a", "b"]}                  one text per input (k = 1), or n*k texts in input order
      {"generated_texts": [["a1", "a2"], ["b1", "b2"]]}  one list per input
      [{"generated_text": "a"}, {"generated_text": "b"}] Hugging Face pipeline style, also nested per input
      [{"generated_texts": [...]}, ...]               one object per input
    Raises RealtimeError when the count does not match, naming what arrived.
    """
    outputs = body.get("generated_texts", body.get("generated_text")) if isinstance(body, dict) else body
    if isinstance(body, dict) and outputs is None:
        raise RealtimeError(f"response has no 'generated_texts': {_shown(body)}")
    if isinstance(outputs, str) and count == 1:
        outputs = [outputs]
    if not isinstance(outputs, list):
        raise RealtimeError(f"response is not a list of generations: {_shown(body)}")

    per_input = [_texts_of(item) for item in outputs]
    if any(texts is None for texts in per_input):
        raise RealtimeError(f"response holds an item that is not generated text: {_shown(body)}")
    if len(per_input) == count:
        return per_input  # type: ignore[return-value]
    if count * sequences == len(per_input) and all(len(texts) == 1 for texts in per_input):  # type: ignore[arg-type]
        flat = [texts[0] for texts in per_input]  # type: ignore[index]
        return [flat[i * sequences : (i + 1) * sequences] for i in range(count)]
    raise RealtimeError(f"endpoint returned {len(per_input)} outputs for {count} inputs: {_shown(body)}")


def invoke_batch(
    endpoint: str,
    texts: Sequence[str],
    *,
    client: Any = None,
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
    max_texts_per_request: int = DEFAULT_MAX_TEXTS_PER_REQUEST,
    **params: Any,
) -> list[str] | list[list[str]]:
    """Generate for every text through a JumpStart text2text endpoint; one output per input, in input order.

    `params` are the model's generation parameters (max_length, top_k, do_sample, ...), sent beside
    `text_inputs` in every request. Each output is the generated string, or a list of strings when
    `num_return_sequences` > 1. At most `max_concurrency` requests are in flight; the first failed
    request stops the rest and its error is raised with a note naming the inputs it carried.
    """
    if max_concurrency < 1:
        raise ValueError("max_concurrency must be at least 1")
    if max_payload_bytes > SAGEMAKER_PAYLOAD_LIMIT_BYTES:
        raise ValueError(f"max_payload_bytes {max_payload_bytes} is over SageMaker's {SAGEMAKER_PAYLOAD_LIMIT_BYTES}")
    sequences = int(params.get("num_return_sequences") or 1)
    ranges = plan_requests(
        texts, params, max_payload_bytes=max_payload_bytes, max_texts_per_request=max_texts_per_request
    )
    if not ranges:
        return []
    workers = min(max_concurrency, len(ranges))
    runtime = client if client is not None else runtime_client(max_concurrency=workers)

    def call(span: range) -> list[list[str]]:
        body = _dumps({"text_inputs": [texts[i] for i in span], **params})
        try:
            response = runtime.invoke_endpoint(
                EndpointName=endpoint, Body=body, ContentType="application/json", Accept="application/json"
            )
            return parse_generations(_load_body(response["Body"].read()), len(span), sequences)
        except RealtimeError as error:
            raise RealtimeError(f"endpoint {endpoint!r}, inputs {span.start}..{span.stop - 1}: {error}") from None
        except Exception as error:
            error.add_note(f"endpoint {endpoint!r}, request for inputs {span.start}..{span.stop - 1}")
            raise

    if workers == 1:
        results = [call(span) for span in ranges]
    else:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="invoke-batch") as pool:
            futures = [pool.submit(call, span) for span in ranges]
            _, pending = wait(futures, return_when=FIRST_EXCEPTION)
            for future in pending:
                future.cancel()
            results = [future.result() for future in futures]  # raises the first failure in input order

    outputs = [texts_for_input for result in results for texts_for_input in result]
    if sequences > 1:
        return outputs
    return [_single(texts_for_input, index) for index, texts_for_input in enumerate(outputs)]


def _single(texts: list[str], index: int) -> str:
    if len(texts) != 1:
        raise RealtimeError(f"input {index}: expected one generated text, got {len(texts)}: {_shown(texts)}")
    return texts[0]


# ---------------------------------------------------------------- token streaming


def stream(
    endpoint: str,
    prompt: str,
    *,
    client: Any = None,
    include_special: bool = False,
    **params: Any,
) -> Iterator[str]:
    """Yield the token texts a TGI endpoint generates for `prompt`, as they arrive.

    `params` become TGI's `parameters` (max_new_tokens, temperature, top_p, stop, ...). The request
    is sent when `stream` is called, so a missing endpoint fails here rather than at the first token.
    Errors the service sends inside the stream (ModelStreamError, InternalStreamFailure) raise StreamError.
    """
    runtime = client if client is not None else runtime_client()
    body = _dumps({"inputs": prompt, "parameters": params, "stream": True})
    response = runtime.invoke_endpoint_with_response_stream(
        EndpointName=endpoint, Body=body, ContentType="application/json"
    )
    return _tokens_from_response(endpoint, response["Body"], include_special)


def _tokens_from_response(endpoint: str, events: Any, include_special: bool) -> Iterator[str]:
    # Deferred (see the module docstring): botocore loads with the client, not with this module.
    from botocore.exceptions import EventStreamError

    try:
        yield from iter_tokens(events, include_special=include_special)
    except EventStreamError as error:
        # boto3 raises the service's in-stream error events while iterating instead of yielding them.
        info = error.response.get("Error", {})
        raise StreamError(
            f"endpoint {endpoint!r} stream failed: {info.get('Code')}: {_shown(info.get('Message'))}"
        ) from error
    finally:
        close = getattr(events, "close", None)
        if close is not None:
            close()


_STREAM_ERROR_EVENTS = ("ModelStreamError", "InternalStreamFailure")
# Server-sent-event fields other than `data` carry nothing we use.
_SSE_IGNORED_FIELDS = (b"event:", b"id:", b"retry:")


def iter_tokens(event_stream: Iterable[Any], include_special: bool = False) -> Iterator[str]:
    """Yield token texts from events shaped like boto3's ({"PayloadPart": {"Bytes": b"..."}}).

    The bytes form lines of TGI output, either server-sent events (`data:{json}`, blank separator
    lines, `:` comments) or bare JSON lines. Event boundaries are arbitrary: a line may span events,
    even mid UTF-8 character, and one event may hold many lines. Lines are split on the newline
    byte before decoding (0x0A never occurs inside a multi-byte UTF-8 sequence), so no character is
    ever cut. Each `data:` line must hold one whole JSON object, as TGI sends them.
    """
    buffer = bytearray()
    for event in event_stream:
        if not isinstance(event, dict):
            raise StreamError(f"stream event is not a mapping: {_shown(event)}")
        for name in _STREAM_ERROR_EVENTS:
            if name in event:
                detail = event[name] or {}
                code = detail.get("ErrorCode") if isinstance(detail, dict) else None
                message = detail.get("Message") if isinstance(detail, dict) else detail
                raise StreamError(f"{name}{f' {code}' if code else ''}: {_shown(message)}")
        part = event.get("PayloadPart")
        if part is None:
            continue  # an event type added after this code was written; nothing to read in it
        chunk = part.get("Bytes") if isinstance(part, dict) else None
        if not isinstance(chunk, (bytes, bytearray, memoryview)):
            raise StreamError(f"PayloadPart without bytes: {_shown(event)}")
        search_from = len(buffer)
        buffer += chunk
        line_start = 0
        while (newline := buffer.find(b"\n", max(line_start, search_from))) != -1:
            token = _token_of_line(bytes(buffer[line_start:newline]), include_special)
            if token is not None:
                yield token
            line_start = newline + 1
        del buffer[:line_start]
    if buffer.strip():
        # A stream may end without a final newline; what is left must still be a whole line.
        try:
            token = _token_of_line(bytes(buffer), include_special)
        except StreamError as error:
            raise StreamError(f"stream ended inside a line: {error}") from None
        if token is not None:
            yield token


def _token_of_line(raw: bytes, include_special: bool) -> str | None:
    line = raw.strip()
    if not line or line.startswith(b":"):
        return None  # keep-alive: a blank separator or an SSE comment
    if line.startswith(b"data:"):
        line = line[len(b"data:") :].strip()
        if not line:
            return None
    elif line.startswith(_SSE_IGNORED_FIELDS):
        return None
    try:
        message = json.loads(line.decode("utf-8"))
    except ValueError:
        raise StreamError(f"malformed stream line: {_shown(raw)}") from None
    if isinstance(message, dict) and "error" in message:
        kind = message.get("error_type") or "error"
        raise StreamError(f"endpoint reported {kind}: {_shown(message['error'])}")
    token = message.get("token") if isinstance(message, dict) else None
    if not isinstance(token, dict) or not isinstance(token.get("text"), str):
        raise StreamError(f"stream line has no token text: {_shown(raw)}")
    text: str = token["text"]
    if token.get("special") and not include_special:
        return None
    return text
