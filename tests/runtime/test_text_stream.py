from npc_sdk.runtime.text_stream import TextStream

from ..helpers import byte_tokenizer


def _feed(stream: TextStream, text: str) -> list[str]:
    ids = stream.tokenizer.encode(text).ids
    deltas = [stream.push(i) for i in ids]
    deltas.append(stream.finish())
    return [d for d in deltas if d]


def test_multibyte_characters_are_never_split():
    tok = byte_tokenizer()
    text = "Aye 🔥 forge—ünd 漢字!"
    assert len(tok.encode("🔥").ids) == 4  # one emoji spans four tokens here
    stream = TextStream(tok)
    deltas = _feed(stream, text)
    assert "".join(deltas) == text
    assert all("\ufffd" not in d for d in deltas)
    assert len(deltas) > 5  # it streamed, it did not hold everything to the end


def test_stop_string_cuts_the_reply_and_never_leaks():
    tok = byte_tokenizer()
    stream = TextStream(tok, stop=("\nPlayer:",))
    deltas = []
    for i in tok.encode("Off with you.\nPlayer: and more").ids:
        deltas.append(stream.push(i))
        if stream.stopped:
            break
    deltas.append(stream.finish())
    joined = "".join(deltas)
    assert stream.stopped
    assert joined == "Off with you."
    assert "\n" not in joined  # the held-back start of the stop string was never emitted


def test_partial_stop_prefix_is_released_when_it_does_not_complete():
    tok = byte_tokenizer()
    stream = TextStream(tok, stop=("STOP",))
    deltas = _feed(stream, "a STOrm came")
    assert "".join(deltas) == "a STOrm came"
    assert not stream.stopped


def _streamed(stream: TextStream, text: str) -> list[str]:
    """The non-empty deltas of `text` fed token by token until the stream stops."""
    deltas = []
    for i in stream.tokenizer.encode(text).ids:
        deltas.append(stream.push(i))
        if stream.stopped:
            break
    deltas.append(stream.finish())
    return [d for d in deltas if d]


def _until_stopped(stream: TextStream, text: str) -> str:
    return "".join(_streamed(stream, text))


def test_max_sentences_ends_the_reply_after_that_many_sentences():
    text = "Ten silver, and it's back by dusk. The grindstone wants a new belt. Come back later."
    assert (
        _until_stopped(TextStream(byte_tokenizer(), max_sentences=1), text)
        == "Ten silver, and it's back by dusk."
    )
    two = TextStream(byte_tokenizer(), max_sentences=2)
    assert _until_stopped(two, text) == "Ten silver, and it's back by dusk. The grindstone wants a new belt."
    assert two.stopped
    unlimited = TextStream(byte_tokenizer())
    assert _until_stopped(unlimited, text) == text and not unlimited.stopped


def test_short_sentences_abbreviations_and_decimals_do_not_end_the_reply():
    stream = TextStream(byte_tokenizer(), max_sentences=1)
    said = _until_stopped(stream, "No, lad. Mr. Hale wants 3.5 silver for it, no less! Then again...")
    assert said == "No, lad. Mr. Hale wants 3.5 silver for it, no less!"
    # a last sentence with nothing after it is simply the end of the reply
    assert (
        _until_stopped(TextStream(byte_tokenizer(), max_sentences=1), "Aye, that I can.")
        == "Aye, that I can."
    )


def test_a_reply_never_starts_with_whitespace():
    stream = TextStream(byte_tokenizer())
    assert "".join(_feed(stream, "  \n Wren, the explorer.")) == "Wren, the explorer."


def test_max_clauses_ends_the_reply_before_its_next_clause_and_closes_it():
    cases = {
        "I've never heard of her, but she's the chief of the guild.": "I've never heard of her.",
        "That coin is a bomb, darling; I threw it at the water.": "That coin is a bomb, darling.",
        "The Teeth are a reef off Cape Sorrow, where the stars keep floating.": "The Teeth are a reef off Cape Sorrow.",
        "One loaf is two silver \u2014 a pastry for the same.": "One loaf is two silver.",
    }
    for text, said in cases.items():
        stream = TextStream(byte_tokenizer(), max_sentences=1, max_clauses=1)
        deltas = _streamed(stream, text)
        assert "".join(deltas) == said and stream.stopped
        # the comma was held back, never streamed, and the full stop came in its place
        assert not any(d.rstrip().endswith((",", ";", "\u2014")) for d in deltas)


def test_what_only_looks_like_a_clause_boundary_streams_on():
    kept = [
        "No, but I can mend it for you.",  # the first clause is under 4 words
        "I sell bread, cheese, and milk to anyone.",  # a list, not a second clause
        "Hold still, stranger, the bees are calm.",  # no connective after the comma
        "I'll sharpen it for you, butterfingers.",  # "but" only starts the word
        "Keep to the stones and go slowly.",  # a connective with no comma before it
    ]
    for text in kept:
        stream = TextStream(byte_tokenizer(), max_clauses=1)
        assert "".join(_streamed(stream, text)) == text and not stream.stopped
    # 0 is no limit; 2 keeps two clauses
    text = "The road is closed, so take the ferry, and mind the toll."
    assert "".join(_streamed(TextStream(byte_tokenizer(), max_clauses=0), text)) == text
    two = "".join(_streamed(TextStream(byte_tokenizer(), max_clauses=2), text))
    assert two == "The road is closed, so take the ferry."


def test_a_reply_ending_in_a_banned_word_keeps_what_was_already_shown():
    # fed a character at a time: "elve" could still become the banned word, so it waits, and so does the space
    # before it; what a player saw adds up to the reply's text (best of N streams on that promise)
    stream = TextStream(byte_tokenizer(), banned=("elves",))
    deltas = _feed(stream, "I trade with elves")
    assert "".join(deltas) == stream.text[: stream.emitted] == "I trade with"
    assert "elves" not in "".join(deltas)


def test_the_start_of_a_banned_word_is_released_once_it_becomes_another_word():
    stream = TextStream(byte_tokenizer(), banned=("elves",))
    shown = []
    for i in stream.tokenizer.encode("Ask the elven smiths").ids:
        shown.append(stream.push(i))
        if "".join(shown).endswith("elven"):
            break
    assert "".join(shown) == "Ask the elven"  # "elve" waited; "elven" is not the banned word
    assert "".join(shown) + stream.finish() == "Ask the elven"
