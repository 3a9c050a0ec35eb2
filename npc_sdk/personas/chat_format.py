"""ChatFormat: the text pieces a decoder's chat template puts around each message, as plain strings.

The export renders the decoder's own Jinja chat template once with placeholder messages (export/model/chat_template.py)
and keeps what lies between them; the runtime only concatenates these strings, so it needs no Jinja and a
prompt's leading positions stay identical from one turn to the next (their KV state is reused).

    system_start {system} system_end
    assistant_start {greeting} assistant_end                       (when the persona has one)
    user_start [prefix] {context}{player} reply_start {reply} assistant_end      (each past turn)
    user_start [prefix] {context}{player} generation                             (this turn)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from ..errors import ModelFolderError


@dataclass(frozen=True)
class ChatFormat:
    system_start: str  # the template's opening (BOS, if it writes one) and the system header
    system_end: str  # after the system text
    user_start: str  # before a player's line (the fusion vectors follow it)
    reply_start: str  # after a past player's line, before the NPC's reply
    generation: str  # after this turn's line: where the NPC starts speaking
    assistant_start: str  # before the greeting, which has no player line before it
    assistant_end: str  # after a reply; begins with `stop`
    stop: str  # the token that ends a reply (its id is the decoder's eos)

    def to_dict(self) -> dict[str, str]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "manifest decoder.chat_format") -> ChatFormat:
        names = [f.name for f in fields(cls)]
        missing = [n for n in names if not isinstance(data.get(n), str)]
        if missing:
            raise ModelFolderError(f"{where}: missing or not text: {', '.join(missing)}")
        return cls(**{n: data[n] for n in names})

    @classmethod
    def of_manifest(cls, decoder: dict[str, Any], where: str = "manifest decoder.chat_format") -> ChatFormat:
        """The format a model folder's manifest `decoder` section records; ChatML for folders exported before
        decoders were a choice."""
        saved = decoder.get("chat_format")
        return cls.from_dict(saved, where) if saved else CHATML


# SmolLM2's ChatML, the embedded decoder's format (and what a model folder without chat_format uses).
CHATML = ChatFormat(
    system_start="<|im_start|>system\n",
    system_end="<|im_end|>\n",
    user_start="<|im_start|>user\n",
    reply_start="<|im_end|>\n<|im_start|>assistant\n",
    generation="<|im_end|>\n<|im_start|>assistant\n",
    assistant_start="<|im_start|>assistant\n",
    assistant_end="<|im_end|>\n",
    stop="<|im_end|>",
)
