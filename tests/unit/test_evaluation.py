"""evaluate_files: the join by id, the counts, metric inference and the report's shape."""

from __future__ import annotations

import json

import pytest
from rouge_score import rouge_scorer as google_rouge

from batch_pipeline.results.evaluation.errors import EvaluationError
from batch_pipeline_local.cli.evaluate_join import read_references
from batch_pipeline_local.cli.evaluate_scoring import evaluate_files

GOOGLE = google_rouge.RougeScorer(["rouge1", "rouge2", "rougeL", "rougeLsum"])


def lines(*objects):
    return [json.dumps(obj).encode() for obj in objects]


REFERENCES = lines(
    {"id": 0, "highlights": "the mayor opened a bridge .\ntraffic will ease"},
    {"id": "1", "reference": "storms closed the schools"},
    {"id": 2, "reference": "prices rose again in may"},
    {"id": 3, "reference": "the team won the final"},
)


def test_predictions_in_any_order_join_by_str_id_and_score_like_rouge_score():
    predictions = [
        "{'id': '2', 'generated_texts': ['prices rose in may']}",  # str id joins int id
        json.dumps({"id": 1, "generated_texts": ["schools closed after storms"]}),  # int id joins str id
        json.dumps({"id": 3, "prediction": "the team won"}),
        "{'id': 0, 'generated_texts': ['a bridge was opened by the mayor']}",
    ]
    report, per_record = evaluate_files(predictions, REFERENCES)

    assert report["metric"] == "rouge"
    assert (report["records"], report["scored"], report["missing"], report["errors"]) == (4, 4, 0, 0)
    expected = GOOGLE.score("prices rose again in may", "prices rose in may")
    assert per_record["2"]["rouge2"] == expected["rouge2"].fmeasure
    assert set(per_record) == {"0", "1", "2", "3"}
    assert set(report["rouge"]) == {"rouge1", "rouge2", "rougeL", "rougeLsum"}
    assert set(report["rouge"]["rougeLsum"]) == {"precision", "recall", "fmeasure"}
    json.dumps(report)  # the report must be JSON as it stands (evaluation.json)


def test_missing_and_error_records_are_counted_never_scored_as_empty():
    predictions = [
        json.dumps(
            {
                "recordId": "0",
                "modelInput": {},
                "modelOutput": {
                    "content": [{"type": "text", "text": "the mayor opened a bridge"}],
                    "usage": {"input_tokens": 10, "output_tokens": 5},
                },
            }
        ),
        json.dumps({"recordId": "1", "modelInput": {}, "error": {"errorCode": 400, "errorMessage": "Malformed input"}}),
        json.dumps({"recordId": "2", "modelInput": {}, "error": {"errorCode": 500, "errorMessage": "internal"}}),
    ]
    report, per_record = evaluate_files(predictions, REFERENCES)

    assert (report["records"], report["scored"], report["missing"], report["errors"]) == (4, 1, 1, 2)
    assert report["error_codes"] == {"400": 1, "500": 1}
    assert report["missing_examples"] == ["3"]
    assert set(per_record) == {"0"}
    # The means are over the one scored pair: an empty answer for 1, 2 and 3 would have dragged them down.
    assert (
        report["rouge"]["rouge1"]["fmeasure"]
        == GOOGLE.score("the mayor opened a bridge .\ntraffic will ease", "the mayor opened a bridge")[
            "rouge1"
        ].fmeasure
    )
    assert (report["input_tokens"], report["output_tokens"]) == (10, 5)


def test_an_empty_prediction_text_is_a_real_answer_and_scores_zero():
    report, per_record = evaluate_files([json.dumps({"id": 1, "prediction": ""})], REFERENCES)
    assert (report["scored"], report["errors"]) == (1, 0)
    assert per_record["1"]["rouge1"] == 0.0


def test_a_prediction_line_without_text_or_error_counts_as_an_error():
    report, _ = evaluate_files([json.dumps({"id": 1, "prediction": None})], REFERENCES)
    assert (report["scored"], report["errors"], report["error_codes"]) == (0, 1, {"no_prediction": 1})


def test_invalid_unmatched_and_duplicate_prediction_lines_are_counted():
    predictions = [
        "not a line at all",
        json.dumps({"id": 99, "prediction": "nobody asked"}),
        json.dumps({"id": 1, "prediction": None, "error": {"code": "Throttled", "message": "slow down"}}),
        json.dumps({"id": 1, "prediction": "storms closed the schools"}),  # a retry replaces the error
        json.dumps({"id": 2, "prediction": "prices rose"}),
        json.dumps({"id": 2, "prediction": "a second answer"}),  # the first answer stays
        "",
    ]
    report, per_record = evaluate_files(predictions, REFERENCES)

    assert report["invalid_lines"] == 1 and "not a line at all" in report["invalid_examples"][0]
    assert report["unmatched"] == 1 and report["unmatched_examples"] == ["99"]
    assert report["duplicates"] == 2
    assert report["prediction_lines"] == 6
    assert (report["scored"], report["errors"], report["missing"]) == (2, 0, 2)
    assert per_record["1"]["rouge1"] == 1.0
    assert per_record["2"]["rouge1"] == GOOGLE.score("prices rose again in may", "prices rose")["rouge1"].fmeasure


def test_zero_shot_out_lines_without_ids_join_by_position():
    references = lines({"id": "a", "label": "pos"}, {"id": "b", "label": "neg"}, {"id": "c", "label": "neg"})
    predictions = [
        "{'sequence': 'great', 'labels': ['pos', 'neg'], 'scores': [0.9, 0.1]}",
        "{'sequence': 'awful', 'labels': ['neg', 'pos'], 'scores': [0.8, 0.2]}",
    ]
    report, per_record = evaluate_files(predictions, references)

    assert report["joined_by"] == "position"
    assert (report["records"], report["scored"], report["missing"]) == (3, 2, 1)
    assert report["accuracy"] == 1.0
    assert per_record["b"] == {"label": "neg", "predicted": "neg", "correct": True}


def test_predictions_without_ids_next_to_ones_with_ids_are_counted_as_unidentified():
    predictions = [json.dumps({"id": 1, "prediction": "x"}), "{'generated_texts': ['no id here']}"]
    report, _ = evaluate_files(predictions, REFERENCES)
    assert (report["joined_by"], report["unidentified"], report["scored"]) == ("id", 1, 1)


def test_metric_is_inferred_from_references_and_can_be_forced():
    references = lines({"id": 1, "label": "pos", "reference": "good film"}, {"id": 2, "reference": "bad film"})
    predictions = [json.dumps({"id": 1, "prediction": "pos"}), json.dumps({"id": 2, "prediction": "bad film"})]

    inferred, _ = evaluate_files(predictions, references)
    assert inferred["metric"] == "classification"
    assert (inferred["records"], inferred["references_without_target"]) == (1, 1)

    forced, per_record = evaluate_files(predictions, references, "rouge")
    assert forced["metric"] == "rouge" and forced["records"] == 2
    assert per_record["2"]["rouge1"] == 1.0

    with pytest.raises(EvaluationError, match="unknown metric"):
        evaluate_files(predictions, references, "bleu")


def test_classification_report_from_zero_shot_and_free_text_answers():
    references = lines(*({"id": i, "label": label} for i, label in enumerate(["pos", "pos", "neg", "neu"])))
    predictions = [
        json.dumps({"id": 0, "prediction": "pos", "labels": ["pos", "neg", "neu"], "scores": [0.7, 0.2, 0.1]}),
        json.dumps(
            {"recordId": "1", "modelInput": {}, "modelOutput": {"output": {"message": {"content": [{"text": "Pos."}]}}}}
        ),
        json.dumps({"id": 2, "prediction": "I think it is negative"}),
        json.dumps({"id": 3, "prediction": "neu"}),
    ]
    report, per_record = evaluate_files(predictions, references)

    assert report["metric"] == "classification" and report["multi_label"] is False
    assert report["accuracy"] == pytest.approx(3 / 4)
    assert per_record["2"] == {"label": "neg", "predicted": "<other>", "correct": False}
    assert report["per_class"]["pos"]["recall"] == 1.0
    assert report["per_class"]["neg"]["recall"] == 0.0
    assert report["confusion_matrix"]["labels"] == ["neg", "neu", "pos", "<other>"]
    assert "macro_f1" in report


def test_multi_label_is_inferred_from_list_labels_and_uses_the_threshold():
    references = lines({"id": 1, "label": ["sports", "politics"]}, {"id": 2, "label": ["tech"]})
    predictions = [
        json.dumps(
            {"id": 1, "prediction": "sports", "labels": ["sports", "politics", "tech"], "scores": [0.9, 0.6, 0.1]}
        ),
        json.dumps(
            {"id": 2, "prediction": "tech", "labels": ["tech", "sports", "politics"], "scores": [0.55, 0.3, 0.2]}
        ),
    ]
    report, per_record = evaluate_files(predictions, references)
    assert report["multi_label"] is True and report["threshold"] == 0.5
    assert report["accuracy"] == 1.0
    assert per_record["1"] == {"label": ["politics", "sports"], "predicted": ["politics", "sports"], "correct": True}

    strict, _ = evaluate_files(predictions, references, threshold=0.7)
    assert strict["accuracy"] == 0.0
    assert strict["per_class"]["tech"]["recall"] == 0.0


def test_stemming_option_reaches_the_scorer():
    references = lines({"id": 1, "reference": "the cats were running"})
    predictions = [json.dumps({"id": 1, "prediction": "the cat was run"})]
    plain, _ = evaluate_files(predictions, references)
    stemmed, _ = evaluate_files(predictions, references, use_stemmer=True)
    assert plain["rouge"]["rouge1"]["fmeasure"] < stemmed["rouge"]["rouge1"]["fmeasure"]
    assert stemmed["rouge_options"]["use_stemmer"] is True


def test_bootstrap_is_optional_and_seeded():
    predictions = [
        json.dumps({"id": i, "prediction": text})
        for i, text in [(0, "the mayor"), (1, "storms"), (2, "prices rose"), (3, "won")]
    ]
    without, _ = evaluate_files(predictions, REFERENCES)
    assert "rouge_bootstrap" not in without
    first, _ = evaluate_files(predictions, REFERENCES, bootstrap_samples=50, seed=3)
    again, _ = evaluate_files(predictions, REFERENCES, bootstrap_samples=50, seed=3)
    assert first["rouge_bootstrap"] == again["rouge_bootstrap"]
    interval = first["rouge_bootstrap"]["rouge1"]["fmeasure"]
    assert interval["low"] <= first["rouge"]["rouge1"]["fmeasure"] <= interval["high"]


def test_no_scored_records_gives_null_means():
    report, per_record = evaluate_files([], REFERENCES)
    assert (report["records"], report["scored"], report["missing"]) == (4, 0, 4)
    assert report["rouge"]["rouge1"]["fmeasure"] is None
    assert per_record == {}


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"{not json", "line 1 is not JSON"),
        (b"[1, 2]", "expected an object"),
        (b'{"reference": "no id"}', "no id or recordId"),
        (b'{"id": 1, "reference": 5}', "reference must be a string"),
        (b'{"id": 1, "label": {"a": 1}}', "label must be"),
    ],
)
def test_unusable_reference_lines_raise_with_the_line_number(line, message):
    with pytest.raises(EvaluationError, match=message):
        read_references([line])


def test_duplicate_reference_ids_are_refused():
    with pytest.raises(EvaluationError, match="duplicate id '1'"):
        read_references(lines({"id": 1, "reference": "a"}, {"id": "1", "reference": "b"}))


def test_references_accept_record_id_several_summaries_and_skip_untargeted_lines():
    references = read_references(
        lines(
            {"recordId": "r1", "reference": ["one", "two"]},
            {"id": 5, "text_inputs": "no target"},
            {"id": 6, "label": 3},
        )
        + [b"\n"]
    )
    assert list(references) == ["r1", "6"]
    assert references["r1"].text == ("one", "two")
    assert references["6"].label == "3"


def test_positional_join_keeps_input_line_positions_when_some_records_have_no_target():
    # The input file used as its own references: the second record has no label but still has an output line.
    references = lines({"id": "a", "label": "pos"}, {"id": "b", "sequences": "no label"}, {"id": "c", "label": "neg"})
    predictions = [
        "{'sequence': 's1', 'labels': ['pos', 'neg'], 'scores': [0.9, 0.1]}",
        "{'sequence': 's2', 'labels': ['pos', 'neg'], 'scores': [0.6, 0.4]}",
        "{'sequence': 's3', 'labels': ['neg', 'pos'], 'scores': [0.7, 0.3]}",
    ]
    report, per_record = evaluate_files(predictions, references)
    assert (report["records"], report["scored"], report["unmatched"]) == (2, 2, 1)
    assert report["accuracy"] == 1.0
    assert per_record["c"]["predicted"] == "neg"


def test_labels_and_scores_without_a_chosen_label_predict_the_top_score():
    references = lines({"id": 1, "label": "neg"})
    predictions = [json.dumps({"id": 1, "prediction": None, "labels": ["pos", "neg"], "scores": [0.3, 0.7]})]
    report, per_record = evaluate_files(predictions, references)
    assert report["scored"] == 1 and per_record["1"]["predicted"] == "neg"
