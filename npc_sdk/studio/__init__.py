"""The studio: a local web page over the server where designers write a persona, try it with screenshots, and see
why each reply came out as it did (docs/studio.md).

Owns: the page's HTTP + WebSocket server (`app`: the WebSocket gateway mounted with the static page, Origin and
Host checks), the persona folder's file access with its path guard (`folder`), the prompt view with its token
counts (`render`), the grounding head's per-cell scores for the heat map (`heatmap`), the studio's own methods
over the page's socket (`methods`), and the page itself (`static/`: plain HTML, CSS and JavaScript, no build step).

May import: the server's gateway and API keys (it runs in the server's process, started by `npc-sdk studio` or
`serve --studio`), persona files, and the runtime's model folder and generation config. Only the CLI imports it
(tests/test_layout.py checks).
"""

from __future__ import annotations

from pathlib import Path

from ..server.api_keys import ApiKey
from ..server.config import ServerConfig
from ..server.snapshots import load_snapshot_key
from .app import StudioGateway, sample_scenes
from .folder import PersonaFolder
from .heatmap import TagCells
from .methods import StudioMethods
from .render import PromptRenderer

__all__ = ["STARTER", "StudioGateway", "make_studio"]

STARTER = Path(__file__).parent / "starter.toml"  # written into an empty persona folder, so the page has one


def make_studio(model_path: Path, config: ServerConfig, port: int) -> StudioGateway:
    """The studio for a server run with `config` on `model_path`, to serve on `config.host`:`port`."""
    assert config.personas_dir is not None, "the studio edits the server's persona folder"
    folder = PersonaFolder(Path(config.personas_dir))
    if not folder.files():
        (folder.root / "brakka.toml").write_text(STARTER.read_text(encoding="utf-8"), encoding="utf-8")
    keys = [*config.api_keys, *([ApiKey("default", config.api_key)] if config.api_key else [])]
    scenes = sample_scenes()
    snapshot_key = config.snapshot_key or load_snapshot_key(Path(config.data_dir))
    renderer = PromptRenderer(model_path)
    methods = StudioMethods(
        folder,
        renderer,
        keys,
        sorted(scenes),
        config.defaults,
        str(model_path),
        snapshot_key,
        TagCells(model_path),
    )
    return StudioGateway(
        host=config.host,
        port=port,
        grpc_max_message_bytes=config.max_message_mb << 20,
        tls_cert=config.tls_cert,
        tls_key=config.tls_key,
        local=methods.table(),
        scenes=scenes,
    )
