"""What every engine's scene sample prints, checked one way against what the server stored.

The C++, C# and GDScript samples make two NPC sessions (Brakka and Mirela) and a scene, let them bicker about a
screenshot (Converse), and after the first line the player cuts in (SceneChat) asking the NPC that has not spoken.
They print, as it streams:

    scene <scene id>: Brakka and Mirela
    Brakka: <a line>                  (streamed; a line cut short ends early)
    Player: Mirela, what do you make of it?
    (interrupted)                     (the talk's last event)
    Mirela: <the answer>
"""

from __future__ import annotations

import re

NAMES = ("Brakka", "Mirela")


def check_bicker(out: str, client) -> None:
    """Assert on a sample's output, with `client` (npc_sdk.Client) reading what the server stored."""
    lines = out.splitlines()
    scene_id = re.search(r"^scene (\S+): Brakka and Mirela$", out, flags=re.M)
    assert scene_id, out
    said = [tuple(line.split(": ", 1)) for line in lines if line.startswith(tuple(f"{n}: " for n in NAMES))]
    player = [line[len("Player: ") :] for line in lines if line.startswith("Player: ")]
    assert len(player) == 1 and lines.count("(interrupted)") == 1, out
    first = said[0][0]
    other = NAMES[1] if first == NAMES[0] else NAMES[0]
    assert player[0] == f"{other}, what do you make of it?", out  # the player asks the one who has not spoken

    members = client.get_scene(scene_id[1]).members
    turns = {m.name: list(client.get_session(m.session_id).turns) for m in members}
    assert sorted(turns) == sorted(NAMES)
    stored = [(name, t.reply) for name, ts in turns.items() for t in ts]
    assert said[0] == (first, turns[first][0].reply), out  # the first line, whole, as it was stored
    answer = turns[other][-1]  # the answer to the player
    assert answer.user.endswith(player[0]) and (other, answer.reply) in said, out  # the line it answered, last
    # Every line stored was printed; at most one printed line is not stored: the one the player cut short.
    assert all(line in said for line in stored), out
    assert len(said) - len(stored) in (0, 1), out
