"""Streaming validation of an uploaded JSONL file: one pass over byte chunks, constant memory.

`StreamValidator.records(chunks)` yields every valid record as `(model_line, references)` and keeps the counts and
the first N errors; `report()` returns the report object that the CLI prints with `--json` and the
Lambda writes as `<name>.report.json` / inside `intake.json`.

Memory stays flat whatever the file size: chunks are split into lines as they arrive, a line longer than the
backend could ever accept is skipped without being buffered, and id uniqueness keeps one 64-bit fingerprint per
record (a set for membership plus a compact array to find a duplicate's first line) instead of the ids themselves.

Lines are not copied out of the chunks: a line is a memoryview of its chunk, parsed from there, and when the record
needs no change that same view is the model-ready line (the spill writes it straight from the chunk).
"""

from __future__ import annotations

import json
import re
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any, final

import orjson

from batch_pipeline.config.runtime import RuntimePipeline
from batch_pipeline.intake.formats import RecordConverter, RecordError

UTF8_BOM = b"\xef\xbb\xbf"
MIB = 1024 * 1024
# Without a backend limit (SageMaker max_payload_mb = 0) a line is still never buffered beyond this.
UNLIMITED_LINE_CAP = 100 * MIB
# A line is read whole up to this size whatever the backend's record limit: references and labels are split off and
# never reach the model, so only the model-ready part counts against that limit (checked after conversion).
MAX_LINE_BYTES = 32 * MIB
# Deepest nesting of objects/arrays a record may have. Real requests nest a handful of levels; the bound keeps every
# later step safe: Python's repr recurses (RecursionError near 1,000) and orjson.dumps refuses more than 255 levels.
MAX_NESTING = 64
# Longest reason / field name an error entry carries: reasons quote values, and a report, a notification and a log
# line must stay bounded whatever the input (SNS refuses messages over 256 KB).
REASON_LIMIT = 500
FIELD_LIMIT = 200


def bounded(text: str, limit: int = REASON_LIMIT) -> str:
    """`text` cut to at most `limit` characters, with a marker saying how much was left out."""
    if len(text) <= limit:
        return text
    marker = f"... [truncated, {len(text) - limit} more characters]"
    return text[: max(0, limit - len(marker))] + marker


_CONTAINERS = frozenset((dict, list))


def shape(value: Any, bound: int = MAX_NESTING) -> int:
    """The number of object keys in `value` (all depths), or -1 when objects/arrays nest deeper than `bound` levels.
    Iterative: no recursion of its own, whatever the depth."""
    flat = value.values() if value.__class__ is dict else value
    keys = len(value) if value.__class__ is dict else 0
    if _CONTAINERS.isdisjoint(map(type, flat)):
        return keys  # the common flat record, decided in C without a Python-level loop
    stack = [(value, 1)]
    pop, push = stack.pop, stack.append
    while stack:
        node, depth = pop()
        for child in node.values() if node.__class__ is dict else node:
            kind = child.__class__
            if kind is dict or kind is list:
                if depth >= bound:
                    return -1
                if kind is dict:
                    keys += len(child)
                push((child, depth + 1))
    return keys


def nesting_exceeds(value: Any, bound: int = MAX_NESTING) -> bool:
    """True when objects/arrays in `value` nest deeper than `bound` levels."""
    return shape(value, bound) < 0


# A key is a string followed by optional whitespace and ":". A match of this pattern is a key's end, an escaped quote
# inside a string followed by ":", or a string opening on ":"; so a line has at most this many keys.
_KEY_END = re.compile(rb'"[ \t\r]*:')


class DuplicateKey(Exception):
    def __init__(self, key: str):
        super().__init__(key)
        self.key = key


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise DuplicateKey(key)
            seen.add(key)
    return result


def duplicate_key(line: bytes | memoryview, parsed_keys: int) -> str | None:
    """The first key that appears twice in one object of `line`, or None. orjson keeps the last of duplicate keys
    silently, so `parsed_keys` (the keys it kept) is compared with cheap upper bounds on the keys in the text first:
    the key-end pattern's count (one C scan of the line, no copy); only when it exceeds the kept keys is the line
    re-parsed with a duplicate check (a line with a duplicate, an escaped quote before ":", or a string opening
    with ":")."""
    if len(_KEY_END.findall(line)) <= parsed_keys:
        return None
    try:
        json.loads(bytes(line), object_pairs_hook=_no_duplicates)
    except DuplicateKey as duplicate:
        return duplicate.key
    return None


# A file whose first bytes say it is not UTF-8 JSON Lines is rejected at once, with the reason, instead of line by
# line. Longer prefixes first (the UTF-32 LE BOM starts with the UTF-16 LE one). Magic numbers: gzip RFC 1952, zip
# (PKWARE APPNOTE), zstd RFC 8878, bzip2 "BZh", xz "FD 37 7A 58 5A 00"; byte order marks from the Unicode FAQ.
_UNCOMPRESSED = "; upload the uncompressed JSON Lines file"
_MAGIC = (
    (b"\x1f\x8b", "gzip_compressed", "compressed file (gzip): the file is gzip-compressed" + _UNCOMPRESSED),
    (b"PK\x03\x04", "zip_archive", "compressed file (zip): the file is a ZIP archive" + _UNCOMPRESSED),
    (
        b"\x28\xb5\x2f\xfd",
        "zstd_compressed",
        "compressed file (zstd): the file is Zstandard-compressed" + _UNCOMPRESSED,
    ),
    (b"BZh", "bzip2_compressed", "compressed file (bzip2): the file is bzip2-compressed" + _UNCOMPRESSED),
    (b"\xfd7zXZ\x00", "xz_compressed", "compressed file (xz): the file is xz-compressed" + _UNCOMPRESSED),
    (
        b"\xff\xfe\x00\x00",
        "utf32_encoded",
        "the file is UTF-32 encoded (byte order mark FF FE 00 00); JSON Lines must be UTF-8",
    ),
    (
        b"\x00\x00\xfe\xff",
        "utf32_encoded",
        "the file is UTF-32 encoded (byte order mark 00 00 FE FF); JSON Lines must be UTF-8",
    ),
    (b"\xff\xfe", "utf16_encoded", "the file is UTF-16 encoded (byte order mark FF FE); JSON Lines must be UTF-8"),
    (b"\xfe\xff", "utf16_encoded", "the file is UTF-16 encoded (byte order mark FE FF); JSON Lines must be UTF-8"),
)
MAGIC_BYTES = 6  # the longest prefix above


def _encoding_without_bom(head: bytes) -> tuple[str, str] | None:
    """UTF-16/UTF-32 without a byte order mark, recognised by where the NUL bytes fall around the first ASCII
    character (JSON text starts with ASCII; RFC 8259 section 8.1 gives this very test)."""
    if len(head) < 4 or b"\x00" not in head[:4]:
        return None
    a, b, c, d = (x == 0 for x in head[:4])
    if not a and b and c and d:
        return "utf32_encoded", "the file is UTF-32 (little-endian, no byte order mark); JSON Lines must be UTF-8"
    if a and b and c and not d:
        return "utf32_encoded", "the file is UTF-32 (big-endian, no byte order mark); JSON Lines must be UTF-8"
    if not a and b and not c and d:
        return "utf16_encoded", "the file is UTF-16 (little-endian, no byte order mark); JSON Lines must be UTF-8"
    if a and not b and c and not d:
        return "utf16_encoded", "the file is UTF-16 (big-endian, no byte order mark); JSON Lines must be UTF-8"
    return None


# (model-ready line ending in "\n": a memoryview of the input chunk when the line passes through unchanged,
#  references or None)
RecordTuple = tuple["bytes | memoryview", "dict[str, Any] | None"]


def record_limit_bytes(pipeline: RuntimePipeline) -> int | None:
    """The largest model-ready record the backend accepts, or None when the backend sets no per-record limit."""
    settings = pipeline.pipeline
    if pipeline.backend == "bedrock" and settings.bedrock is not None:
        return settings.bedrock.max_record_size_kb * 1024
    if settings.sagemaker is not None and settings.sagemaker.max_payload_mb > 0:
        # With MultiRecord, a mini-batch holds at least one record, so one record must fit in one payload.
        return settings.sagemaker.max_payload_mb * MIB
    return None


@final  # so that `type(line) is _Overlong` narrows the other branch to bytes | memoryview
class _Overlong:
    """Stands in for a line that was too long to buffer; only its length is known."""

    __slots__ = ("length",)

    def __init__(self, length: int):
        self.length = length


# One state machine over the chunks (`tail` and `discarding` are shared by every branch): kept whole on purpose.
def split_lines(chunks: Iterable[bytes], cap: int) -> Iterator[bytes | memoryview | _Overlong]:  # noqa: C901
    """Physical lines, each ending in a single "\\n" ("\\r\\n" becomes "\\n"; one is added to a last line without it).

    A line inside one chunk is a memoryview of that chunk (no copy: the spill writes it out from there); a line
    that spans chunks is a bytes object. A line longer than `cap` (newline excluded) becomes an `_Overlong`."""
    tail = bytearray()  # the start of a line that goes on in the next chunk
    discarding = -1  # length so far of an over-long line being skipped, or -1
    for chunk in chunks:
        if discarding >= 0:
            newline = chunk.find(b"\n")
            if newline < 0:
                discarding += len(chunk)
                continue
            yield _Overlong(discarding + newline)
            discarding = -1
            chunk = chunk[newline + 1 :]
        if b"\r" in chunk:
            # A raw CR cannot occur inside a JSON string, so this only touches line endings (a CR whose LF starts
            # the next chunk stays at the end of `tail` and is handled once the line is joined).
            chunk = chunk.replace(b"\r\n", b"\n")
        find = chunk.find
        start = 0
        if tail:
            newline = find(b"\n")
            if newline < 0:
                tail += chunk
                if len(tail) > cap:
                    discarding = len(tail)
                    tail = bytearray()
                continue
            tail += memoryview(chunk)[: newline + 1]
            if tail.endswith(b"\r\n"):
                del tail[-2]
            yield bytes(tail) if len(tail) <= cap + 1 else _Overlong(len(tail) - 1)
            tail = bytearray()
            start = newline + 1
        view = memoryview(chunk)
        newline = find(b"\n", start)
        while newline >= 0:
            yield view[start : newline + 1]
            start = newline + 1
            newline = find(b"\n", start)
        if start < len(chunk):
            tail += view[start:]
            if len(tail) > cap:
                discarding = len(tail)
                tail = bytearray()
    if discarding >= 0:
        yield _Overlong(discarding)
    elif tail:
        if tail.endswith(b"\r"):
            del tail[-1]
        tail += b"\n"
        yield bytes(tail)


def _parses(data: bytes) -> bool:
    try:
        orjson.loads(data)
    except orjson.JSONDecodeError:
        return False
    return True


class StreamValidator:
    """Validates one file for one pipeline. Use once: iterate `records(chunks)`, then call `report()`."""

    def __init__(self, pipeline: RuntimePipeline, on_rejected: Callable[[], None] | None = None):
        """`on_rejected` is called once, as soon as the file is certain to be rejected (the caller can stop writing)."""
        settings = pipeline.pipeline
        self._on_rejected = on_rejected
        self.pipeline = pipeline
        self.converter = RecordConverter(pipeline)
        self.record_limit = record_limit_bytes(pipeline)
        self.line_cap = (
            UNLIMITED_LINE_CAP if self.record_limit is None else max(MAX_LINE_BYTES, 2 * self.record_limit + MIB)
        )
        self.max_records = settings.max_records
        self.max_errors = settings.max_errors_reported
        self.policy = settings.on_invalid
        self.bytes_read = [0]
        self.lines = 0
        self.records_seen = 0
        self.blank_lines = 0
        self.valid = 0
        self.rejected = 0
        self.ids_assigned = 0
        self.references = 0
        self.last_id: Any = None  # the id of the record records() yielded last
        self.errors: list[dict[str, Any]] = []
        self.counts_by_reason: Counter[str] = Counter()
        self.file_errors: list[dict[str, Any]] = []
        self.stopped_early = False
        self._seen: set[int] = set()
        self._fingerprints = array("q")
        self._first_lines = array("q")

    # ------------------------------------------------------------ errors

    def add_error(self, line: int | None, field: str | None, code: str, reason: str) -> None:
        self.counts_by_reason[code] += 1
        if len(self.errors) < self.max_errors:
            self.errors.append(
                {
                    "line": line,
                    "field": None if field is None else bounded(field, FIELD_LIMIT),
                    "code": code,
                    "reason": bounded(reason),
                }
            )

    def _invalid(self, line: int, field: str | None, code: str, reason: str) -> None:
        self.rejected += 1
        self.add_error(line, field, code, reason)
        if self.policy == "reject":
            self._file_rejected()

    def add_file_error(self, line: int | None, code: str, reason: str) -> None:
        """A problem with the file as a whole: it is rejected whatever the policy."""
        self.file_errors.append({"line": line, "field": None, "code": code, "reason": bounded(reason)})
        self.add_error(line, None, code, reason)
        self._file_rejected()

    def _file_rejected(self) -> None:
        if self._on_rejected is not None:
            callback, self._on_rejected = self._on_rejected, None
            callback()

    # ------------------------------------------------------------ the pass

    # The per-line hot loop, inlined on purpose (local aliases, no call per check): a split pays a call per line.
    def records(self, chunks: Iterable[bytes]) -> Iterator[RecordTuple]:  # noqa: C901
        """Valid records as (model-ready line, references or None), in file order."""
        convert = self.converter.convert
        loads = orjson.loads
        decode_error = orjson.JSONDecodeError
        limit = self.record_limit
        size_cap = limit + 1 if limit is not None else UNLIMITED_LINE_CAP  # the model line ends with "\n"
        seen = self._seen
        add_seen = seen.add
        fingerprints = self._fingerprints.append
        first_lines = self._first_lines.append
        max_records = self.max_records
        line_no = records = valid = assigned_ids = with_references = 0
        try:
            for line in split_lines(self._sniffed(chunks), self.line_cap):
                line_no += 1
                if type(line) is _Overlong:
                    records += 1
                    self._invalid(
                        line_no,
                        None,
                        "line_too_long",
                        f"line is {line.length} bytes, above the longest line intake reads "
                        f"({self.line_cap} bytes, references included)"
                        + (f"; the model-ready record may be at most {limit} bytes" if limit else ""),
                    )
                    continue
                try:
                    record = loads(line)
                except decode_error:
                    text = bytes(line[:-1])  # the line as in the file, without its newline
                    if not text.strip():
                        self.blank_lines += 1
                        continue
                    records += 1
                    self.records_seen = records
                    if records > max_records:
                        self._too_many(line_no)
                        return
                    if self._unparsable(line_no, text):
                        return
                    continue
                records += 1
                if records > max_records:
                    self.records_seen = records
                    self._too_many(line_no)
                    return
                if record.__class__ is not dict:
                    self._not_object(line_no, record)
                    continue
                keys = shape(record)
                if keys < 0:
                    self._invalid(
                        line_no,
                        None,
                        "nested_too_deep",
                        f"objects/arrays nest more than {MAX_NESTING} levels deep; no request format needs that",
                    )
                    continue
                duplicate = duplicate_key(line, keys)
                if duplicate is not None:
                    self._invalid(
                        line_no,
                        duplicate,
                        "duplicate_key",
                        f"key {bounded(json.dumps(duplicate, ensure_ascii=False), FIELD_LIMIT)} appears twice "
                        "in one object; parsers disagree about which value wins, so each key must be unique",
                    )
                    continue
                try:
                    record_id, model_line, references, assigned = convert(record, line_no, line)
                except RecordError as error:
                    self._invalid(line_no, error.field, error.code, error.reason)
                    continue
                if len(model_line) > size_cap:
                    self._invalid(
                        line_no,
                        None,
                        "record_too_large",
                        f"the model-ready record is {len(model_line) - 1} bytes; the backend accepts at most {limit}",
                    )
                    continue
                fingerprint = hash(record_id if record_id.__class__ is str else str(record_id))
                if fingerprint in seen:
                    self._duplicate(line_no, record_id, fingerprint, assigned)
                    continue
                add_seen(fingerprint)
                fingerprints(fingerprint)
                first_lines(line_no)
                valid += 1
                if assigned:
                    assigned_ids += 1
                if references is not None:
                    with_references += 1
                self.last_id = record_id  # intake's per-shard id index reads it (collect never re-parses shards)
                yield model_line, references
        finally:
            self.lines = line_no
            self.records_seen = records
            self.valid = valid
            self.ids_assigned = assigned_ids
            self.references = with_references

    def _sniffed(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """Counts the bytes, drops a UTF-8 BOM, and rejects a file whose first bytes say it is compressed or UTF-16."""
        counter = self.bytes_read
        first = True
        head = b""
        for chunk in chunks:
            counter[0] += len(chunk)
            if first:
                head += chunk
                if len(head) < MAGIC_BYTES:
                    continue
                chunk, first = head, False
                found = next(((code, reason) for magic, code, reason in _MAGIC if chunk.startswith(magic)), None)
                found = found or _encoding_without_bom(chunk)
                if found is not None:
                    self.stopped_early = True
                    self.add_file_error(1, *found)
                    return
                if chunk.startswith(UTF8_BOM):
                    chunk = chunk[len(UTF8_BOM) :]
            yield chunk
        if first and head:  # a file shorter than MAGIC_BYTES
            yield head[len(UTF8_BOM) :] if head.startswith(UTF8_BOM) else head

    def _too_many(self, line_no: int) -> None:
        self.records_seen -= 1
        self.stopped_early = True
        self.add_file_error(
            line_no,
            "too_many_records",
            f"the file has more than max_records = {self.max_records} records (stopped reading at line {line_no}); "
            "split it into several uploads or raise the pipeline's max_records",
        )

    def _unparsable(self, line_no: int, line: bytes) -> bool:
        """Records why a line (without its newline) is not JSON.

        Returns True when the file is clearly not JSON Lines.
        """
        try:
            orjson.loads(line)
            error: Exception = ValueError("unparsable")  # not reached: the line failed to parse with its newline
        except orjson.JSONDecodeError as parse_error:
            error = parse_error  # parsed again without the newline, so positions read as they did
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as bad:
            self._invalid(
                line_no,
                None,
                "invalid_utf8",
                f"line is not valid UTF-8 (byte {bad.start + 1} of the line: {line[bad.start : bad.start + 1]!r})",
            )
            return False
        if str(error).startswith("depth limit exceeded"):
            # orjson stops at 1,024 levels; the same rule as any line nested beyond MAX_NESTING.
            self._invalid(
                line_no,
                None,
                "nested_too_deep",
                f"objects/arrays nest more than {MAX_NESTING} levels deep (over 1,024 here, where the JSON "
                "parser stops); no request format needs that",
            )
            return False
        stripped = text.strip()
        if self.records_seen == 1 and not stripped.startswith(("{", "[")) and ("," in text or "\t" in text):
            self.stopped_early = True
            self.rejected += 1
            self.add_file_error(
                line_no,
                "csv_content",
                "the file looks like CSV/TSV (its first line is delimiter-separated text, not JSON); "
                "convert it to JSON Lines: one JSON object per line",
            )
            return True
        if "\r" in text and _parses(line.split(b"\r", 1)[0]):
            # A raw CR cannot be inside a JSON string; when the text before the first one is a whole value, the
            # file separates records with bare CRs.
            reason = "the file uses CR (old Mac) line endings; JSON Lines separates records with LF or CRLF"
        elif stripped in ("{", "[", "}", "]", "},", "],") or stripped.endswith(("{", "[")):
            reason = (
                "line is only part of a JSON value: the file looks pretty-printed; "
                "JSON Lines needs each object complete on one line"
            )
        else:
            reason = f"line is not valid JSON ({error})"
        self._invalid(line_no, None, "invalid_json", reason)
        return False

    def _not_object(self, line_no: int, value: Any) -> None:
        kind = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "a boolean"}.get(
            value.__class__, "null"
        )
        self._invalid(line_no, None, "not_object", f"line is {kind}, not a JSON object; put one object on each line")

    def _duplicate(self, line_no: int, record_id: Any, fingerprint: int, assigned: bool) -> None:
        field = self.converter.id_field
        if len(self.errors) < self.max_errors:
            # array.index is a C scan; it only runs for duplicates that make it into the reported errors.
            first = self._first_lines[self._fingerprints.index(fingerprint)]
            origin = " (assigned from the line number)" if assigned else ""
            reason = bounded(f"duplicate {field} {bounded(repr(record_id), 200)}{origin}: first used on line {first}")
        else:
            first, reason = None, ""
        self.rejected += 1
        self.counts_by_reason["duplicate_id"] += 1
        if self.policy == "reject":
            self._file_rejected()
        if reason:
            self.errors.append(
                {"line": line_no, "field": field, "code": "duplicate_id", "reason": reason, "first_line": first}
            )

    # ------------------------------------------------------------ results

    def ok_so_far(self) -> bool:
        """False once the file is certain to be rejected (a file error, or any invalid line under 'reject')."""
        return not self.file_errors and (self.policy == "skip" or self.rejected == 0)

    def warnings(self) -> list[str]:
        notes = []
        sagemaker = self.pipeline.pipeline.sagemaker
        if self.converter.records_with_parameters and sagemaker is not None and sagemaker.hyper_params is not None:
            notes.append(
                f"{self.converter.records_with_parameters} records carry their own generation parameters, which the "
                "JumpStart container ignores because the pipeline sets sagemaker.hyper_params "
                "(set it to null to use them)"
            )
        if self.converter.labels_outside:
            lines = ", ".join(map(str, self.converter.labels_outside_lines))
            more = ", ..." if self.converter.labels_outside > len(self.converter.labels_outside_lines) else ""
            notes.append(
                f"{self.converter.labels_outside} records have a label that is not among their candidate_labels "
                f"(lines {lines}{more}); the model can never predict it, so evaluation counts those records wrong"
            )
        return notes

    def report(self, extra_file_errors: Iterable[tuple[int | None, str, str]] = ()) -> dict[str, Any]:
        """The report object; `extra_file_errors` are (line, code, reason) found after the pass (e.g. planning)."""
        for line, code, reason in extra_file_errors:
            self.add_file_error(line, code, reason)
        if self.records_seen == 0 and not self.file_errors:
            self.add_file_error(None, "no_records", "the file holds no records (it is empty or only blank lines)")
        elif self.valid == 0 and not self.file_errors and self.policy == "skip":
            self.add_file_error(None, "no_valid_records", "no line is valid, so there is nothing to run")
        accepted = self.ok_so_far() and self.valid > 0
        # The manifest's vocabulary: every record read, the valid ones, the rejected ones; under the 'skip' policy an
        # accepted file's rejected records are skipped (the run goes on without them).
        counts = {
            "total": self.records_seen,
            "valid": self.valid,
            "rejected": self.rejected,
            "skipped": self.rejected if self.policy == "skip" and accepted else 0,
        }
        return {
            "accepted": accepted,
            "reason": None if accepted else self._summary(),
            "pipeline": self.pipeline.name,
            "backend": self.pipeline.backend,
            "input_format": self.pipeline.pipeline.input_format,
            "policy": self.policy,
            "counts": counts,
            "totals": {"lines": self.lines, "bytes": self.bytes_read[0], "blank_lines": self.blank_lines},
            "stopped_early": self.stopped_early,
            "errors": self.errors,
            "errors_reported": len(self.errors),
            "errors_truncated": sum(self.counts_by_reason.values()) > len(self.errors),
            "counts_by_reason": dict(self.counts_by_reason.most_common()),
            "ids_assigned": self.ids_assigned > 0,
            "ids_assigned_count": self.ids_assigned,
            "records_with_references": self.references,
            "warnings": self.warnings(),
        }

    def _summary(self) -> str:
        if self.file_errors:
            reason: str = self.file_errors[0]["reason"]
            return reason
        reasons = ", ".join(f"{code} x{count}" for code, count in self.counts_by_reason.most_common())
        return (
            f"{self.rejected} of {self.records_seen} records are invalid ({reasons}); "
            f"the pipeline's on_invalid policy is {self.policy!r}"
        )
