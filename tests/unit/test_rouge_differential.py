"""Our ROUGE must equal Google's rouge-score 0.1.2 bit for bit, pair by pair.

rouge-score is a test-only dependency (requirements-dev.txt); the runtime scores with rouge-score-rs.
Every text here is generated (bench/synthetic_summaries.py and the fuzzer below) or written for
this test.
"""

from __future__ import annotations

import json
import random

import pytest
from rouge_score import rouge_scorer as google_rouge

from batch_pipeline.results.evaluation.rouge import ROUGE_TYPES, score_pairs
from batch_pipeline_local.cli.evaluate_scoring import evaluate_files
from bench.synthetic_summaries import make_pairs

GOOGLE = {stem: google_rouge.RougeScorer(list(ROUGE_TYPES), use_stemmer=stem) for stem in (False, True)}


def google_scores(reference, prediction, use_stemmer):
    scorer = GOOGLE[use_stemmer]
    if isinstance(reference, str):
        scores = scorer.score(reference, prediction)
    else:
        scores = scorer.score_multi(list(reference), prediction)
    return {rouge_type: tuple(scores[rouge_type]) for rouge_type in ROUGE_TYPES}


def assert_identical(references, predictions, use_stemmer):
    ours = score_pairs(references, predictions, use_stemmer=use_stemmer)
    assert len(ours) == len(references)
    for index, (reference, prediction, scores) in enumerate(zip(references, predictions, ours, strict=True)):
        expected = google_scores(reference, prediction, use_stemmer)
        got = {rouge_type: tuple(scores[rouge_type]) for rouge_type in ROUGE_TYPES}
        # Exact float equality: "identical per pair", not "close".
        assert got == expected, f"pair {index} differs (stemmer={use_stemmer}):\n{reference!r}\n{prediction!r}"


# ---------------------------------------------------------------- generated summaries


def test_thousands_of_generated_summary_pairs_without_stemming():
    pairs = make_pairs(2500, seed=11)
    assert_identical([r for r, _ in pairs], [p for _, p in pairs], use_stemmer=False)


def test_generated_summary_pairs_with_stemming():
    pairs = make_pairs(1200, seed=12)
    assert_identical([r for r, _ in pairs], [p for _, p in pairs], use_stemmer=True)


def test_generated_pairs_really_overlap_and_stemming_changes_scores():
    # Guards the generator: identical scores would prove little if every pair scored 0 or 1,
    # or if stemming never mattered.
    pairs = make_pairs(300, seed=13)
    plain = score_pairs([r for r, _ in pairs], [p for _, p in pairs])
    stemmed = score_pairs([r for r, _ in pairs], [p for _, p in pairs], use_stemmer=True)
    fmeasures = [scores["rougeLsum"].fmeasure for scores in plain]
    assert 0.2 < sum(fmeasures) / len(fmeasures) < 0.9
    assert any(0.0 < f < 1.0 for f in fmeasures)
    assert any(a["rouge1"] != b["rouge1"] for a, b in zip(plain, stemmed, strict=True))
    assert any(a["rougeLsum"] != a["rougeL"] for a in plain)


# ---------------------------------------------------------------- fuzz

# Characters chosen to hit the tokenizer's edges: ASCII case, digits, punctuation, whitespace of
# every kind, Latin letters outside ASCII, other scripts, and code points whose lowercase is
# ASCII or longer than one character (KELVIN SIGN -> "k", LATIN CAPITAL I WITH DOT -> "i" + U+0307).
FUZZ_ALPHABET = (
    "abcdefghijklmnopqrstuvwxyz" * 3
    + "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    + "0123456789"
    + "     \n\n\r\t"
    + ".,;:!?'\"()[]-_/\\$%&*@#"
    + "éèüößøåñçÉÜØ"
    + "\u041f\u0440\u0438\u0432\u0435\u0442"  # Cyrillic
    + "\u4eca\u5929\u5929\u6c14"  # CJK ideographs
    + "\u212a\u0130\u00df\u1e9e\ufb01\u0301"  # Kelvin, dotted I, sharp s, capital sharp s, fi ligature, combining acute
    + "\u00a0\u2028\u3000"  # non-breaking, line separator, ideographic space
    + "\U0001f600"
)


def fuzz_text(rng: random.Random) -> str:
    shape = rng.random()
    if shape < 0.05:
        return ""
    if shape < 0.5:
        # Word-like runs, so tokens repeat and n-grams match across the pair.
        words = [
            "".join(rng.choice(FUZZ_ALPHABET) for _ in range(rng.randint(1, 6)))
            if rng.random() < 0.3
            else rng.choice(WORDS)
            for _ in range(rng.randint(0, 40))
        ]
        separators = [" ", " ", " ", "\n", "\r\n", "\n\n", ", ", " . "]
        return "".join(word + rng.choice(separators) for word in words)
    return "".join(rng.choice(FUZZ_ALPHABET) for _ in range(rng.randint(1, 120)))


WORDS = (
    "running",
    "runs",
    "ran",
    "the",
    "cats",
    "cat",
    "ponies",
    "pony",
    "relational",
    "relate",
    "x",
    "a1",
    "42",
    "Über",
    "naïve",
)

FIXED_CASES = [
    ("", ""),
    ("", "something said"),
    ("something said", ""),
    ("...", "!!!"),
    ("?!, ;:", "the cat."),
    ("   \n\n  ", "\n"),
    ("Über naïve café", "uber naive cafe"),
    ("\u041f\u0440\u0438\u0432\u0435\u0442 \u043c\u0438\u0440", "\u041f\u0440\u0438\u0432\u0435\u0442"),
    ("\u212aelvin \u0130stanbul STRASSE stra\u00dfe", "kelvin istanbul strasse"),
    ("first line\r\nsecond line\r\n", "first line\nsecond line\n"),
    ("a b c\n\n\nd e f\n", "d e f\na b c"),
    ("one\n\ntwo\n \nthree", "three\ntwo\none"),
    ("the the the the", "the"),
    ("2,000 people $5 3.5%", "2 000 people 5 3 5"),
    ("cats running ponies relational", "cat run pony relate"),
]


def long_line(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS + ("alpha", "beta", "gamma", "delta")) for _ in range(words))


@pytest.mark.parametrize("use_stemmer", [False, True], ids=["plain", "stemmed"])
def test_fuzz_inputs_are_identical(use_stemmer):
    rng = random.Random(2024 + use_stemmer)
    references, predictions = [], []
    for reference, prediction in FIXED_CASES:
        references += [reference, prediction]
        predictions += [prediction, reference]
    for _ in range(600):
        references.append(fuzz_text(rng))
        predictions.append(fuzz_text(rng))
    # A very long single line (no newline, so rougeLsum sees one sentence) against a normal
    # summary, and against a long prediction of its own.
    long_reference = long_line(rng, 2500)
    references += [long_reference, long_reference, "short reference text"]
    predictions += ["the cats running " * 20, long_line(rng, 400), long_reference]
    assert_identical(references, predictions, use_stemmer)


@pytest.mark.parametrize("use_stemmer", [False, True], ids=["plain", "stemmed"])
def test_several_references_take_the_best_per_type_like_score_multi(use_stemmer):
    pairs = make_pairs(200, seed=14)
    rng = random.Random(15)
    references = [(reference, pairs[rng.randrange(len(pairs))][0]) for reference, _ in pairs]
    predictions = [prediction for _, prediction in pairs]
    assert_identical(references, predictions, use_stemmer)


def test_lone_surrogates_score_like_separators_as_in_rouge_score():
    # Text decoded with surrogateescape can hold lone surrogates, which cannot cross into Rust;
    # rouge-score treats them as non-alphanumerics, and so must we.
    assert_identical(["bad \udcff byte here"], ["bad byte here"], use_stemmer=False)


# ---------------------------------------------------------------- means through the whole path

HAND_WRITTEN = [
    (
        "The city council approved the new budget on Tuesday .\nSpending on parks rises by ten percent .",
        "The council approved a budget that raises park spending by ten percent.",
    ),
    (
        "Researchers found that sleeping longer improved test scores .\nThe study followed 300 students for a year .",
        "A year-long study of 300 students found longer sleep improved their test scores.",
    ),
    (
        "Heavy rain flooded several roads in the valley .\nNo injuries were reported .",
        "Roads in the valley were flooded by heavy rain, but nobody was hurt.",
    ),
]


def mean_google_fmeasures(pairs, use_stemmer=False):
    totals = dict.fromkeys(ROUGE_TYPES, 0.0)
    for reference, prediction in pairs:
        scores = GOOGLE[use_stemmer].score(reference, prediction)
        for rouge_type in ROUGE_TYPES:
            totals[rouge_type] += scores[rouge_type].fmeasure
    return {rouge_type: total / len(pairs) for rouge_type, total in totals.items()}


def sagemaker_out_line(record_id, text):
    # JumpStart writes Python-literal dicts, not JSON.
    return repr({"id": record_id, "generated_texts": [text]})


def bedrock_out_line(record_id, text, family):
    if family == "anthropic":
        output = {
            "id": "msg_x",
            "type": "message",
            "role": "assistant",
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 100, "output_tokens": 20},
        }
    else:
        output = {
            "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
            "stopReason": "end_turn",
            "usage": {"inputTokens": 100, "outputTokens": 20, "totalTokens": 120},
        }
    return json.dumps({"recordId": str(record_id), "modelInput": {"messages": []}, "modelOutput": output})


@pytest.mark.parametrize("backend", ["sagemaker", "bedrock-anthropic", "bedrock-nova"])
def test_evaluate_files_reproduces_rouge_score_means_from_raw_backend_outputs(backend):
    pairs = HAND_WRITTEN + make_pairs(400, seed=16)
    references = [json.dumps({"id": i, "highlights": reference}) for i, (reference, _) in enumerate(pairs)]
    if backend == "sagemaker":
        predictions = [sagemaker_out_line(i, prediction) for i, (_, prediction) in enumerate(pairs)]
    else:
        family = backend.split("-")[1]
        predictions = [bedrock_out_line(i, prediction, family) for i, (_, prediction) in enumerate(pairs)]
    predictions.reverse()  # any order

    report, per_record = evaluate_files(predictions, references)

    expected = mean_google_fmeasures(pairs)
    assert report["scored"] == len(pairs) and report["missing"] == 0 and report["errors"] == 0
    for rouge_type in ROUGE_TYPES:
        assert abs(report["rouge"][rouge_type]["fmeasure"] - expected[rouge_type]) < 1e-9
    assert per_record["0"]["rougeL"] == GOOGLE[False].score(*pairs[0])["rougeL"].fmeasure
    if backend.startswith("bedrock"):
        assert (report["input_tokens"], report["output_tokens"]) == (100 * len(pairs), 20 * len(pairs))
    else:
        assert report["input_tokens"] is None and report["output_tokens"] is None
