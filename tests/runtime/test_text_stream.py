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
