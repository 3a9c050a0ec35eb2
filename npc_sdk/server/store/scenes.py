"""The scene table both store backends keep (server/scene_rules.py says what a scene is).

One row a scene: its member sessions, the NPCs' names, and what each NPC heard since it last spoke (JSON), so a
restarted server carries on a scene where it was. The queries are written once with `?` placeholders.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ..scene_rules import SceneState

SQLITE_SCENES = """
CREATE TABLE IF NOT EXISTS scenes (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL,                        -- members, names, heard lines, last speaker (JSON)
    owner TEXT NOT NULL DEFAULT '',
    created_ms INTEGER NOT NULL
);
"""
POSTGRES_SCENES = """
CREATE TABLE scenes (
    id TEXT PRIMARY KEY,
    state JSONB NOT NULL,
    owner TEXT NOT NULL DEFAULT '',
    created_ms BIGINT NOT NULL
);
"""
INSERT_SCENE = "INSERT INTO scenes (id, state, owner, created_ms) VALUES (?, ?, ?, ?)"
UPDATE_SCENE = "UPDATE scenes SET state = ? WHERE id = ?"
SELECT_SCENE = "SELECT id, state, owner, created_ms FROM scenes WHERE id = ?"
DELETE_SCENE = "DELETE FROM scenes WHERE id = ?"


def state_json(scene: SceneState) -> str:
    return json.dumps(
        {
            "members": scene.members,
            "names": scene.names,
            "heard": scene.heard,
            "last_speaker": scene.last_speaker,
        }
    )


def insert_args(scene: SceneState) -> tuple[Any, ...]:
    return scene.id, state_json(scene), scene.owner, scene.created_ms


def scene_of(row: Sequence[Any]) -> SceneState:
    sid, state, owner, created = row
    data = state if isinstance(state, dict) else json.loads(state)
    return SceneState(
        sid,
        list(data["members"]),
        dict(data["names"]),
        {k: list(v) for k, v in data["heard"].items()},
        data.get("last_speaker", ""),
        int(created),
        owner,
    )
