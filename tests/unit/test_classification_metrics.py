"""Classification metrics, checked against values worked out by hand (scikit-learn conventions)."""

from __future__ import annotations

import pytest

from batch_pipeline.results.evaluation.classification import (
    OTHER_LABEL,
    LabelMatcher,
    multi_label_metrics,
    predicted_label_set,
    single_label_metrics,
)


def test_single_label_accuracy_macro_f1_per_class_and_confusion_matrix():
    truth = ["cat", "cat", "cat", "dog", "dog", "bird"]
    predicted = ["cat", "cat", "dog", "dog", "cat", "dog"]

    metrics = single_label_metrics(truth, predicted)

    assert metrics["accuracy"] == pytest.approx(3 / 6)
    # cat: tp 2, fp 1, fn 1 -> P 2/3 R 2/3 F1 2/3; dog: tp 1, fp 2, fn 1 -> P 1/3 R 1/2 F1 0.4;
    # bird: never predicted -> P 0 R 0 F1 0.
    assert metrics["per_class"]["cat"] == {
        "precision": pytest.approx(2 / 3),
        "recall": pytest.approx(2 / 3),
        "f1": pytest.approx(2 / 3),
        "support": 3,
    }
    assert metrics["per_class"]["dog"] == {
        "precision": pytest.approx(1 / 3),
        "recall": pytest.approx(1 / 2),
        "f1": pytest.approx(0.4),
        "support": 2,
    }
    assert metrics["per_class"]["bird"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert metrics["macro_f1"] == pytest.approx((2 / 3 + 0.4 + 0.0) / 3)
    assert metrics["confusion_matrix"]["labels"] == ["bird", "cat", "dog"]
    assert metrics["confusion_matrix"]["matrix"] == [
        [0, 0, 1],  # bird predicted as dog
        [0, 2, 1],
        [0, 1, 1],
    ]
    assert metrics["multi_label"] is False


def test_classes_predicted_but_never_true_count_in_macro_f1_and_other_sorts_last():
    metrics = single_label_metrics(["a", "a"], ["a", OTHER_LABEL])
    assert metrics["confusion_matrix"]["labels"] == ["a", OTHER_LABEL]
    # a: tp 1, fn 1 -> F1 2/3; <other>: fp 1 -> F1 0.
    assert metrics["macro_f1"] == pytest.approx((2 / 3) / 2)
    assert metrics["per_class"][OTHER_LABEL]["support"] == 0


def test_single_label_with_no_records_reports_none_not_zero():
    metrics = single_label_metrics([], [])
    assert metrics["accuracy"] is None and metrics["macro_f1"] is None
    assert metrics["confusion_matrix"]["matrix"] == []


def test_single_label_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="2 true labels but 1"):
        single_label_metrics(["a", "b"], ["a"])


def test_multi_label_subset_accuracy_macro_micro_and_per_label_matrices():
    truth = [frozenset({"sports", "politics"}), frozenset({"sports"}), frozenset(), frozenset({"tech"})]
    predicted = [frozenset({"sports", "politics"}), frozenset({"sports", "tech"}), frozenset(), frozenset()]

    metrics = multi_label_metrics(truth, predicted)

    assert metrics["accuracy"] == pytest.approx(2 / 4)  # records 0 and 2 match exactly
    # politics: tp 1 -> F1 1; sports: tp 2 -> F1 1; tech: fp 1, fn 1 -> F1 0.
    assert metrics["per_class"]["tech"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert metrics["macro_f1"] == pytest.approx(2 / 3)
    # micro: tp 3, fp 1, fn 1 -> P 3/4, R 3/4, F1 3/4.
    assert (metrics["micro_precision"], metrics["micro_recall"], metrics["micro_f1"]) == pytest.approx(
        (0.75, 0.75, 0.75)
    )
    assert metrics["hamming_loss"] == pytest.approx(2 / (4 * 3))
    matrix = dict(zip(metrics["confusion_matrix"]["labels"], metrics["confusion_matrix"]["matrix"], strict=True))
    assert matrix["sports"] == [[2, 0], [0, 2]]
    assert matrix["tech"] == [[2, 1], [1, 0]]
    assert metrics["multi_label"] is True


def test_the_multi_label_decision_rule_is_score_at_least_threshold():
    labels, scores = ["a", "b", "c"], [0.5, 0.49999, 0.93]
    assert predicted_label_set(labels, scores) == {"a", "c"}
    assert predicted_label_set(labels, scores, threshold=0.95) == frozenset()
    assert predicted_label_set(labels, scores, threshold=0.4) == {"a", "b", "c"}


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("positive", "positive"),
        ("Positive.", "positive"),
        ("  NEGATIVE!\n", "negative"),
        ('"neutral"', "neutral"),
        ("The answer is positive", OTHER_LABEL),
        ("", OTHER_LABEL),
    ],
)
def test_free_text_answers_map_to_known_classes_or_other(answer, expected):
    assert LabelMatcher(["positive", "negative", "neutral"]).match(answer) == expected


def test_free_text_multi_label_answers_are_split_on_separators():
    matcher = LabelMatcher(["sports", "politics", "tech"])
    assert matcher.match_many("Sports, politics") == {"sports", "politics"}
    assert matcher.match_many("sports;\nweather") == {"sports", OTHER_LABEL}
    assert matcher.match_many("") == frozenset()
