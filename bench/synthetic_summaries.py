"""Generated CNN/DailyMail-shaped summary pairs for ROUGE tests and benchmarks.

Everything here is made up from a small hand-written word list and invented pseudo-words, so no
third-party text enters the repository. A pair is a reference of 3-4 newline-separated sentences
(about 50-60 words, the shape of CNN/DailyMail highlights) and a prediction derived from it by
dropping, replacing and reordering words, so the pair overlaps the way a model summary does.
"""

from __future__ import annotations

import random

# Common English words, several with inflections, so stemming on and off give different scores.
COMMON_WORDS = (
    "the a an of to in on for with at by from after before over under about against between "
    "is was were are be been being has had have said says will would could should may might "
    "and or but not no yes also more most less than then when where which who what why how "
    "police officials government president minister court judge jury trial case report reports "
    "reported reporting city cities country countries state states people person children child "
    "family families year years month months week weeks day days today yesterday tomorrow "
    "killed injured arrested charged accused released announced announcing announcement "
    "attack attacks attacked fire fires firing storm storms flooding flooded election elections "
    "vote votes voted voting team teams played playing player players game games won winning "
    "lost losing season seasons club clubs company companies market markets price prices rising "
    "fell falling billion million percent new old first last second third big small high low "
    "national international local federal military officers officer hospital hospitals doctors "
    "study studies studied scientists research researchers found finding findings says told "
    "telling interview statement statements investigation investigations relational rational "
    "conditional generously happiness hopeful hopefully agreement agreements development "
    "developments running runs ran decision decisions deciding decided ponies caresses cats"
).split()

SYLLABLES = ("ka", "lo", "mi", "ter", "son", "vel", "dra", "pen", "qui", "zor", "bel", "ath", "ori", "nu", "sta")
SUFFIXES = ("", "", "", "s", "ed", "ing", "ly", "ness", "ment", "ies", "ational", "izer", "ful")
PUNCTUATION_AFTER = ("", "", "", "", "", "", ",", ",", "'s", ";", ":")


def _pseudo_word(rng: random.Random) -> str:
    stem = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 3)))
    return stem + rng.choice(SUFFIXES)


def make_vocabulary(rng: random.Random, size: int = 1500) -> list[str]:
    """Common words plus invented ones; a Zipf-like pick from it gives realistic repeats."""
    words = list(COMMON_WORDS)
    while len(words) < size:
        words.append(_pseudo_word(rng))
    return words


def _pick(rng: random.Random, vocabulary: list[str]) -> str:
    # Cubing a uniform draw favours the front of the list (the common words), like real text.
    return vocabulary[int(len(vocabulary) * rng.random() ** 3)]


def _token(rng: random.Random, vocabulary: list[str]) -> str:
    roll = rng.random()
    if roll < 0.04:
        return f"{rng.randint(1, 99)},{rng.randint(0, 999):03d}"
    if roll < 0.07:
        return f"${rng.randint(1, 500)}"
    word = _pick(rng, vocabulary)
    if roll < 0.17:
        word = word.capitalize()
    return word + rng.choice(PUNCTUATION_AFTER)


def make_sentence(rng: random.Random, vocabulary: list[str], words: int) -> str:
    tokens = [_token(rng, vocabulary) for _ in range(words)]
    tokens[0] = tokens[0].capitalize()
    if rng.random() < 0.15:
        tokens[-1] = f'"{tokens[-1]}"'
    # CNN/DailyMail highlights end sentences with " ." (a space before the full stop).
    return " ".join(tokens) + rng.choice((" .", ".", " ."))


def make_reference(rng: random.Random, vocabulary: list[str]) -> str:
    sentence_count = rng.randint(3, 4)
    total = rng.randint(48, 62)
    lengths = [total // sentence_count] * sentence_count
    lengths[-1] += total - sum(lengths)
    return "\n".join(make_sentence(rng, vocabulary, n) for n in lengths)


def make_prediction(rng: random.Random, vocabulary: list[str], reference: str) -> str:
    """A model-like summary: most words kept, some replaced or dropped, sentences sometimes swapped."""
    sentences = reference.split("\n")
    if rng.random() < 0.3:
        rng.shuffle(sentences)
    kept = []
    for sentence in sentences[: rng.randint(2, len(sentences))]:
        words = []
        for word in sentence.split(" "):
            roll = rng.random()
            if roll < 0.2:
                continue
            words.append(_token(rng, vocabulary) if roll < 0.45 else word)
        while len(words) < 12:
            words.append(_token(rng, vocabulary))
        kept.append(" ".join(words))
    return "\n".join(kept)


def make_pairs(count: int, seed: int = 0) -> list[tuple[str, str]]:
    """`count` (reference, prediction) pairs, the same for the same seed."""
    rng = random.Random(seed)
    vocabulary = make_vocabulary(rng)
    pairs = []
    for _ in range(count):
        reference = make_reference(rng, vocabulary)
        pairs.append((reference, make_prediction(rng, vocabulary, reference)))
    return pairs
