"""The loop detector: repeated tails are loops, text that never repeats never is."""

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.config.sessions import MIN_WINDOW
from proxy.interactive.loops import CHECK_EVERY, MIN_SPAN, Detector, Loop


def feed_all(detector: Detector, text: str, cuts: list[int]) -> Loop | None:
    """Feed `text` split at `cuts`; the first loop reported, if any, then a final check."""
    found = None
    bounds = [0, *sorted(c % (len(text) + 1) for c in cuts), len(text)]
    for a, b in itertools.pairwise(bounds):
        found = found or detector.feed(text[a:b])
    return found or detector.check()


# Distinct tokens that each hold one "<": no stretch of the text repeats, as each fragment
# long enough to repeat holds a whole token, and every token is different.
unique_tokens = st.lists(st.integers(0, 10**6), unique=True, max_size=1500).map(
    lambda ns: "".join(f"<{n:x}> " if n % 3 else f"<w{n}>\n" for n in ns)
)
cuts = st.lists(st.integers(0, 100_000), max_size=40)


@given(unique_tokens, cuts, st.integers(2, 10), st.sampled_from((256, 1024, 4096)))
def test_text_that_never_repeats_is_never_a_loop(
    text: str, split: list[int], repeats: int, window: int
) -> None:
    assert feed_all(Detector(window, repeats), text, split) is None


fragments = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=120)


@given(unique_tokens, fragments, st.integers(2, 8), st.integers(0, 5), cuts)
def test_a_fragment_repeated_enough_is_a_loop(
    prefix: str, fragment: str, repeats: int, extra: int, split: list[int]
) -> None:
    window = 4096
    copies = max(repeats, -(-MIN_SPAN // len(fragment))) + extra
    if copies * len(fragment) > window:
        copies = window // len(fragment)
    if copies < repeats:
        return  # this fragment can't fit `repeats` times in the window: not a loop by the rule
    loop = feed_all(Detector(window, repeats), prefix + fragment * copies, split)
    assert loop is not None
    # The smallest period is found, and the fragment is one: at most its length.
    assert 1 <= loop.length <= len(fragment)
    assert loop.count >= max(repeats, MIN_SPAN // loop.length)


def test_reports_the_fragment_length_and_count() -> None:
    detector = Detector(window=4096, min_repeats=6)
    story = "".join(f"Line {i} of a story that goes on. " for i in range(40))
    sentence = "I cannot help with that request. "  # 33 characters
    # 7 copies make the 6 repeats but not the MIN_SPAN stretch (231 < 256); 8 copies do.
    assert feed_all(Detector(4096, 6), story + sentence * 7, [5, 17, 900]) is None
    loop = feed_all(detector, story + sentence * 9, [5, 17, 900])
    assert loop == Loop(length=33, count=9)
    assert detector.feed("more text") == loop  # reported once, kept


def test_too_few_copies_or_too_short_a_stretch_is_not_a_loop() -> None:
    sentence = "I cannot help with that request. "
    assert feed_all(Detector(4096, 6), sentence * 5 + "Fine.", []) is None
    assert feed_all(Detector(4096, 6), "-" * (MIN_SPAN - 1), []) is None
    assert feed_all(Detector(4096, 6), "-" * MIN_SPAN, []) == Loop(1, MIN_SPAN)


def test_a_loop_the_text_moved_on_from_is_not_reported() -> None:
    sentence = "I cannot help with that request. "
    text = sentence * 8 + "".join(f"then step {i} happens. " for i in range(50))
    detector = Detector(4096, 6)
    assert detector.feed(text) is None  # one chunk, checked once: the tail no longer loops
    detector = Detector(4096, 6)
    assert detector.feed(text[: len(sentence) * 8]) is not None  # as it streamed: caught


def test_fragments_longer_than_the_window_allows_are_not_loops() -> None:
    fragment = "".join(f"<{i}>" for i in range(100))  # 390 characters
    assert feed_all(Detector(window=1024, min_repeats=3), fragment * 10, []) is None
    assert feed_all(Detector(window=4096, min_repeats=3), fragment * 10, []) is not None


def test_checks_happen_every_few_characters() -> None:
    detector = Detector(4096, 6)
    loop_text = "ab" * (MIN_SPAN // 2)
    assert detector.feed(loop_text[: CHECK_EVERY - 1]) is None
    result = None
    for ch in loop_text[CHECK_EVERY - 1 :]:
        result = result or detector.feed(ch)
    assert result == Loop(2, MIN_SPAN // 2)


def test_settings_are_checked() -> None:
    assert MIN_WINDOW >= MIN_SPAN  # every window the config accepts can hold a loop
    for window, repeats in ((100, 6), (4096, 1)):
        with pytest.raises(ValueError, match="min_repeats"):
            Detector(window, repeats)
