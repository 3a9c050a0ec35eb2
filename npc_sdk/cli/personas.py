"""`persona validate` and `persona render`: persona files checked, and the exact prompt one makes."""

from __future__ import annotations

import argparse
from pathlib import Path


def _decoder_tokenizer(model: str | None):
    from tokenizers import Tokenizer

    from ..cache import cache_dir

    candidates = [Path(model) / "tokenizer.json"] if model else []
    candidates += sorted((cache_dir() / "models").glob("*/tokenizer.json"))
    candidates += sorted((cache_dir() / "converted").glob("*/tokenizer.json"))
    for path in candidates:
        if path.is_file():
            return Tokenizer.from_file(str(path))
    raise SystemExit("no decoder tokenizer found: run `npc-sdk export` once (or pass --model DIR)")


def cmd_persona(args: argparse.Namespace) -> int:
    from ..personas.files import load_persona, validate_files
    from ..personas.prompt import Turn, build_prompt, turn_context

    if args.action == "validate":
        personas, problems = validate_files([Path(f) for f in args.files])
        for problem in problems:
            print(problem)
        ok = {p.id for p in personas}
        print(f"{len(personas)} valid ({', '.join(sorted(ok))}), {len(problems)} problem(s)")
        return 1 if problems else 0
    persona = load_persona(args.files[0])
    tok = _decoder_tokenizer(args.model)
    history = [Turn(u, r) for u, r in zip(args.history[::2], args.history[1::2], strict=False)]
    context = turn_context(tok, persona, history, args.text)
    prompt = build_prompt(tok, persona, history, args.text, None, context)
    marker = "⟨8 fusion vectors: the screenshot, the line and the persona⟩"
    rendered = tok.decode(prompt.token_ids, skip_special_tokens=False)
    head, sep, tail = rendered.rpartition("<|im_start|>user\n")
    print(f"{head}{sep}{marker}{tail}", end="")
    notes = context.strip() or "none"
    print(f"\n--- {prompt.length} positions + 8 prefix vectors; lore/instructions this turn: {notes}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("persona", help="check persona files, or print the exact prompt one produces")
    p.add_argument("action", choices=("validate", "render"))
    p.add_argument(
        "files", nargs="+", help="persona files: .toml, .json (npc-sdk or Character Card V2), .png cards"
    )
    p.add_argument("--text", default="What is that over there?", help="render: the player's line")
    p.add_argument("--history", nargs="*", default=[], help="render: earlier turns as USER REPLY pairs")
    p.add_argument("--model", help="render: model folder whose tokenizer to use (default: any in the cache)")
    p.set_defaults(func=cmd_persona)
