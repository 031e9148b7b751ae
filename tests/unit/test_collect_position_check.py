"""The zero-shot positional join's echo check: exact echoes need no normalising, and normalising means what \\s+ meant.

bench/scale.py found the check was 70% of a zero-shot collect's CPU (a regex over every 4 KB article, twice per
record); these tests pin the cheaper form's behaviour, without timing it."""

import re

from batch_pipeline.results import collect
from batch_pipeline.results.collect import _Input, _matches, _normal, _Output

ARTICLE = 'The council said "a new bridge" would open.\n\nCafé naïve São Paulo, 据报道 Москва.\u00a0End.'


def test_an_exact_echo_matches_without_normalising(monkeypatch):
    calls = []
    monkeypatch.setattr(collect, "_normal", lambda text: calls.append(text) or text)
    assert _matches(_Input("a", ARTICLE), _Output({"id": None}, sequence=ARTICLE)) is True
    assert calls == []


def test_an_echo_that_differs_only_in_whitespace_still_matches_and_other_text_does_not():
    reflowed = "  " + " ".join(ARTICLE.split()) + "\n"
    assert _matches(_Input("a", ARTICLE), _Output({"id": None}, sequence=reflowed)) is True
    assert _matches(_Input("a", ARTICLE), _Output({"id": None}, sequence=ARTICLE + " more")) is False
    assert _matches(_Input("a", None), _Output({"id": None}, sequence=ARTICLE)) is None


def test_normalising_collapses_the_same_whitespace_as_the_regex_did():
    whitespace = "".join(chr(code) for code in range(0x110000) if re.fullmatch(r"\s", chr(code)))
    text = f"{whitespace}a{whitespace}b c\u2028d\x1ce{whitespace}"
    assert _normal(text) == re.sub(r"\s+", " ", text).strip() == "a b c d e"
    assert _normal(3) is None
