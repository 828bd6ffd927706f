"""Failure messages: masked before they are cut, cut between words, long lists counted."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from opsverify import message
from opsverify.evidence import MASK, REDACTOR

TOKEN = "tok-9f8e7d6c5b4a39281706f5e4d3c2b1a0"


def test_a_cut_inside_a_secret_leaves_no_fragment_of_it() -> None:
    REDACTOR.add(TOKEN)
    # The limit falls in the middle of the token, for head and for tail.
    body = "x" * 190 + TOKEN + " and the rest of the answer"
    for shortened in (message.head(body, 200), message.tail("start " + body, 60)):
        for size in range(8, len(TOKEN)):
            assert not any(TOKEN[i : i + size] in shortened for i in range(len(TOKEN) - size))
    assert MASK in message.head(f"token {TOKEN} end", 2000)


def test_head_cuts_between_words_and_counts_what_it_left_out() -> None:
    urls = " ".join(f"https://runbooks.example.com/alerts/Alert{i}" for i in range(100))
    shortened = message.head(urls, 300)
    kept = shortened.split(" … [")[0]
    assert urls.startswith(kept) and urls[len(kept)] == " "  # ends where a URL ends
    left = int(shortened.split(" … [")[1].split()[0])
    assert left == len(urls) - len(kept)


def test_tail_keeps_the_end_from_a_word_boundary() -> None:
    output = (
        "Checking config/alert_rules.yml\n  FAILED:\n" + "noise " * 200 + "field spec not found"
    )
    shortened = message.tail(output, 100)
    assert shortened.endswith("spec not found")
    assert shortened.split(" … ")[1].startswith("noise")


def test_a_long_list_states_its_count_and_where_the_rest_is() -> None:
    alerts = [f"cronos-ai/Alert{i}" for i in range(39)]
    text = message.listing(alerts, "alerts", "runbook host not reachable from this runner")
    assert text.startswith("39 alerts: runbook host not reachable from this runner; first 10:")
    assert "cronos-ai/Alert9;" in text and "Alert10;" not in text
    assert text.endswith("all 39 in the evidence")
    assert message.listing(alerts[:2], "alerts") == "2 alerts: cronos-ai/Alert0; cronos-ai/Alert1"


@given(st.text(), st.integers(min_value=20, max_value=400))
def test_head_is_bounded_and_a_prefix_of_the_masked_text(text: str, limit: int) -> None:
    shortened = message.head(text, limit)
    masked = REDACTOR.text(text)
    if len(masked) <= limit:
        assert shortened == masked
    else:
        kept = shortened.rsplit(" … [", 1)[0]
        assert masked.startswith(kept) and len(kept) <= limit
