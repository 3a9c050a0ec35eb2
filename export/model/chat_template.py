"""A decoder's chat template (Jinja, from its tokenizer config or GGUF) reduced to the strings of a ChatFormat.

The template is rendered once with placeholder messages, system, user, assistant, user, plus the generation
prompt, and the text between the placeholders is split where the stop token ends a message:

    {system_start}SYS{system_end + user_start}U1{reply_start}A1{assistant_end + user_start}U2{generation}
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from transformers import AutoTokenizer, PretrainedConfig

from npc_sdk.errors import DecoderError
from npc_sdk.personas.chat_format import ChatFormat

_SYS, _U1, _A1, _U2 = "QZSYSTEMQZ", "QZUSERONEQZ", "QZREPLYONEQZ", "QZUSERTWOQZ"


def _stop_candidates(tokenizer, config: PretrainedConfig, folder: Path) -> list[str]:
    """Token strings that may end a reply: the tokenizer's eos and every eos id of the config files."""
    ids: list[int] = []
    for source in (config.to_dict(), _json(folder / "generation_config.json")):
        eos = source.get("eos_token_id")
        ids += eos if isinstance(eos, list) else [eos] if isinstance(eos, int) else []
    names = [tokenizer.eos_token] if tokenizer.eos_token else []
    names += [tokenizer.convert_ids_to_tokens(i) for i in ids]
    return [n for n in dict.fromkeys(names) if n]


def _json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def _split_after_stop(text: str, stops: list[str]) -> tuple[str, str] | None:
    """(up to and including the first stop token and the whitespace after it, the rest), or None."""
    found = [(text.find(s), s) for s in stops if s in text]
    if not found:
        return None
    at, stop = min(found)
    end = at + len(stop)
    end += len(text[end:]) - len(text[end:].lstrip("\n"))
    return text[:end], text[end:]


def chat_format_from_tokenizer(folder: Path, config: PretrainedConfig) -> ChatFormat:
    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    if not getattr(tokenizer, "chat_template", None):
        raise DecoderError(
            f"{folder}: the tokenizer config has no chat_template; npc-sdk needs a chat-tuned (instruct) decoder "
            "whose template says how system, user and assistant messages are written"
        )
    messages = [
        {"role": "system", "content": _SYS},
        {"role": "user", "content": _U1},
        {"role": "assistant", "content": _A1},
        {"role": "user", "content": _U2},
    ]
    try:
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    except Exception as exc:  # a Jinja TemplateError, or raise_exception() in the template itself
        raise DecoderError(
            f"{folder}: the chat template cannot render a system message followed by user and assistant "
            f"turns ({exc}); npc-sdk puts the persona in a system message"
        ) from exc
    if not isinstance(text, str):
        raise DecoderError(f"{folder}: the chat template did not render text")
    pieces = re.split(f"({_SYS}|{_U1}|{_A1}|{_U2})", text)
    order = [p for p in pieces if p in (_SYS, _U1, _A1, _U2)]
    if order != [_SYS, _U1, _A1, _U2]:
        raise DecoderError(
            f"{folder}: the chat template drops or reorders messages; cannot derive its format"
        )
    head, _, j1, _, j2, _, j3, _, tail = pieces
    return derive_format(head, j1, j2, j3, tail, _stop_candidates(tokenizer, config, folder), folder)


def derive_format(
    head: str, j1: str, j2: str, j3: str, tail: str, stops: list[str], where: object = "chat template"
) -> ChatFormat:
    """The ChatFormat from the text between placeholders (see the module docstring) and the stop tokens."""
    after_reply = _split_after_stop(j3, stops)
    if after_reply is None:
        raise DecoderError(
            f"{where}: no stop token ({', '.join(stops) or 'none known'}) after an assistant message in the chat "
            "template; cannot tell where a reply ends"
        )
    assistant_end, user_start = after_reply
    if not j1.endswith(user_start):
        raise DecoderError(
            f"{where}: the user header differs after the system message; cannot derive its format"
        )
    stop = next(s for s in sorted(stops, key=lambda s: j3.find(s) if s in j3 else len(j3)) if s in j3)
    after_user = _split_after_stop(j2, [stop])
    return ChatFormat(
        system_start=head,
        system_end=j1[: len(j1) - len(user_start)],
        user_start=user_start,
        reply_start=j2,
        generation=tail,
        assistant_start=after_user[1] if after_user else j2,
        assistant_end=assistant_end,
        stop=stop,
    )
