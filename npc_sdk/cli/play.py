"""Talking to NPCs: the scripted `demo`, and `chat` with a running server from the terminal (one NPC, or a scene of
several with `--scene`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path

from ._common import ensure_model, torch_side


def cmd_demo(args: argparse.Namespace) -> int:
    from ..demo import DEMO_PERSONA, DEMO_SCRIPT, scene_path
    from ..personas.prompt import Turn
    from ..runtime.events import Delta, Done

    persona = DEMO_PERSONA
    # the persona's own settings, as the server would use them; only what was given on the command line wins
    given = {"max_tokens": args.max_tokens, "temperature": args.temperature, "seed": args.seed}
    config = persona.generation_defaults().with_(**{k: v for k, v in given.items() if v is not None})
    if args.reference:
        model = torch_side().NpcModel.load(log=lambda msg: print(f"[setup] {msg}", flush=True))
        print(f"[model] PyTorch reference; {model.fusion_info.describe()}")
        history: list[Turn] = []

        def turn(line, screenshot):
            return model.stream(
                line.text,
                persona=persona,
                history=history,
                screenshot=screenshot,
                scene=line.scene,
                config=config,
            )
    else:
        from ..runtime.conversation import Conversation
        from ..runtime.onnx_model import OnnxNpcModel

        # best of N decodes its candidates on spare slots: one for each
        runtime = OnnxNpcModel.load(ensure_model(args.model), slots=config.candidates)
        print(f"[model] {runtime.describe()}")
        conversation = Conversation(runtime, persona)

        def turn(line, screenshot):
            return conversation.stream(line.text, screenshot=screenshot, scene=line.scene, config=config)

    print(f"\n{persona.name}: {persona.greeting}")
    for line in DEMO_SCRIPT:
        shown = f" [showing {line.screenshot}]" if line.screenshot else ""
        told = f" [the game: {', '.join(e.name or e.tag for e in line.scene)} in view]" if line.scene else ""
        print(f"\nPlayer{shown}{told}: {line.text}")
        print(f"{persona.name}: ", end="", flush=True)
        screenshot = scene_path(line.screenshot).read_bytes() if line.screenshot else None
        for event in turn(line, screenshot):
            if isinstance(event, Delta):
                print(event.text, end="", flush=True)
            elif isinstance(event, Done):
                t = event.timings
                seen = ", ".join(
                    f"{s.tag} {s.score:.2f}" if s.source != "game" else s.tag for s in event.seen
                )
                print(
                    f"\n  ({event.usage.completion_tokens} tokens, first after {t.ttft_ms:.0f} ms, "
                    f"{t.decode_tokens_per_second:.1f} tok/s, {event.finish_reason}; in view: {seen or 'nothing'})"
                )
                if args.reference:
                    history.append(Turn(line.text, event.text))
    return 0


def _player_lines() -> Iterator[str]:
    """The player's lines from the terminal, stripped and non-empty, until end of input or /quit (/exit)."""
    while True:
        try:
            line = input("you> ").strip()
        except EOFError:
            return
        if line in ("/quit", "/exit"):
            return
        if line:
            yield line


def cmd_chat(args: argparse.Namespace) -> int:
    import grpc

    from ..client import Client
    from ..runtime.events import Action, Delta, Done

    with Client(args.address, api_key=args.api_key, tls_ca=args.tls_ca) as client:
        if args.scene:
            return _chat_scene(client, args)
        if args.session:
            session = client.get_session(args.session)
        elif args.persona_id:
            session = client.create_session_from_file(args.persona_id)
        else:
            persona = {"name": args.name, "description": args.description}
            session = client.create_session(persona)
        name = session.persona.name
        print(
            f"session {session.session_id} with {name}. /look FILE attaches a screenshot, "
            "/scene TAG[,TAG...] says what the game has in view, /state KEY=VALUE[,...] sets game state, "
            "/quit leaves."
        )
        screenshot = None
        scene: list[str] = []
        state: dict[str, str] = {}
        for line in _player_lines():
            if line.startswith("/look "):
                screenshot = Path(line[6:].strip()).expanduser()
                print(
                    f"(next line shows {screenshot})" if screenshot.is_file() else f"(no file {screenshot})"
                )
                screenshot = screenshot if screenshot.is_file() else None
                continue
            if line.startswith("/state"):
                pairs = [p.split("=", 1) for p in line[6:].split(",") if "=" in p]
                state = {k.strip(): v.strip() for k, v in pairs}
                print(f"(game state from now on: {state or 'none'})")
                continue
            if line.startswith("/scene"):
                scene = [t.strip() for t in line[6:].split(",") if t.strip()]
                print(f"(next line: the game says {', '.join(scene) or 'nothing'} is in view)")
                continue
            print(f"{name}> ", end="", flush=True)
            try:
                with client.chat(
                    session.session_id,
                    line,
                    screenshot=screenshot,
                    scene=scene,
                    state=state,
                    max_tokens=args.max_tokens,
                ) as stream:
                    for event in stream:
                        if isinstance(event, Action):
                            args_text = ", ".join(f"{k}={v}" for k, v in event.args.items())
                            print(
                                f"[action {event.name}({args_text}) {event.confidence:.2f}] ",
                                end="",
                                flush=True,
                            )
                        elif isinstance(event, Delta):
                            print(event.text, end="", flush=True)
                        elif isinstance(event, Done):
                            emotion = (
                                f", {event.emotion.label} {event.emotion.intensity:.2f}"
                                if event.emotion
                                else ""
                            )
                            print(f"   [{event.timings.ttft_ms:.0f} ms to first token{emotion}]")
                            if event.seen:
                                seen = ", ".join(f"{s.tag} {s.score:.2f} ({s.source})" for s in event.seen)
                                print(f"   [in view: {seen}]")
            except grpc.RpcError as exc:
                print(f"\n[error {exc.code().name}: {exc.details()}]")
            screenshot, scene = None, []
    return 0


def _chat_scene(client, args: argparse.Namespace) -> int:
    """`chat --scene a,b`: a session per persona id, one scene of them; plain lines go to SceneChat (the NPC named
    answers, else the most relevant), `/talk N [TOPIC]` lets them talk among themselves (Converse)."""
    import grpc

    try:
        sessions = [client.create_session_from_file(p.strip()) for p in args.scene.split(",") if p.strip()]
        scene = client.create_scene([s.session_id for s in sessions])
    except grpc.RpcError as exc:
        print(f"npc-sdk chat: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1
    names = " and ".join(s.persona.name for s in sessions)
    print(
        f"scene {scene.scene_id} with {names}. A line goes to all of them (name one to ask it), "
        "/talk N [TOPIC] lets them talk N lines among themselves (Ctrl-C cuts in), /look FILE attaches a "
        "screenshot, /quit leaves."
    )
    screenshot = None
    for line in _player_lines():
        if line.startswith("/look "):
            path = Path(line[6:].strip()).expanduser()
            screenshot = path if path.is_file() else None
            print(f"(next line shows {path})" if screenshot else f"(no file {path})")
            continue
        if line.startswith("/talk"):
            count, _, topic = line[5:].strip().partition(" ")
            if count and not count.isdigit():
                count, topic = "", line[5:].strip()
            call = client.converse(
                scene.scene_id,
                int(count or 4),
                topic=topic.strip(),
                screenshot=screenshot,
                max_tokens=args.max_tokens,
            )
        else:
            call = client.scene_chat(scene.scene_id, line, screenshot=screenshot, max_tokens=args.max_tokens)
        _print_scene(call)
        screenshot = None
    return 0


def _print_scene(call) -> None:
    """A scene stream as `Name: text` lines, each streamed as it is decoded."""
    import grpc

    speaking = ""  # the speaker whose line is being printed
    try:
        for event in call:
            kind = event.event.WhichOneof("event") if event.HasField("event") else None
            if event.interrupted:
                print("\n(interrupted)" if speaking else "(interrupted)")
                speaking = ""
            elif kind == "action":
                action = event.event.action
                print(f"[{event.speaker}: action {action.name} {action.confidence:.2f}]")
            elif kind == "delta":
                if speaking != event.speaker:
                    print(f"{event.speaker}: ", end="")
                    speaking = event.speaker
                print(event.event.delta.text, end="", flush=True)
            elif kind == "done":
                print("" if speaking == event.speaker else f"{event.speaker}: {event.event.done.text}")
                speaking = ""
    except KeyboardInterrupt:
        call.cancel()  # the server ends the talk as a SceneChat would: the line in flight stores nothing
        print("\n(cut short)")
    except grpc.RpcError as exc:
        print(f"\n[error {exc.code().name}: {exc.details()}]")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="play the scripted demo scene on the exported int4 runtime (pulls and exports what is missing)",
    )
    p.add_argument(
        "--model", help="model folder to play on (default: the cached int4 export, built if missing)"
    )
    p.add_argument("--reference", action="store_true", help="play on the PyTorch reference model instead")
    p.add_argument("--max-tokens", type=int, default=60)
    p.add_argument("--temperature", type=float, help="default: the demo persona's (0.7)")
    p.add_argument("--seed", type=int, default=7, help="fixes the sampled replies")
    p.set_defaults(func=cmd_demo)
    p = sub.add_parser("chat", help="talk to an NPC on a running server from the terminal")
    p.add_argument("--address", default="127.0.0.1:50051")
    p.add_argument("--api-key")
    p.add_argument("--session", help="continue this session instead of creating one")
    p.add_argument("--persona-id", help="talk to a persona the server loaded from its --personas folder")
    p.add_argument("--name", default="Brakka")
    p.add_argument("--description", default="A gruff dwarven blacksmith who runs the village forge.")
    p.add_argument("--tls-ca", help="PEM file to trust for a TLS server (its certificate, if self-signed)")
    p.add_argument(
        "--scene",
        metavar="ID,ID[,...]",
        help="talk to a scene of 2-6 NPCs, persona ids from the server's --personas folder (docs/scenes.md)",
    )
    p.add_argument("--max-tokens", type=int, help="tokens per reply at most (default: the persona's, or 80)")
    p.set_defaults(func=cmd_chat)
