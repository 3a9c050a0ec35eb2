"""`persona validate|render|import|export`: persona files checked, the exact prompt one makes, cards in and out."""

from __future__ import annotations

import argparse
from pathlib import Path


def _decoder_tokenizer(model: str | None):
    """The decoder's tokenizer and chat format: from --model, else any model folder in the cache."""
    import json

    from tokenizers import Tokenizer

    from ..cache import cache_dir
    from ..personas.chat_format import ChatFormat

    candidates = [Path(model) / "tokenizer.json"] if model else []
    candidates += sorted((cache_dir() / "models").glob("npc-default-*/tokenizer.json"))
    candidates += sorted((cache_dir() / "converted").glob("smollm2-*/tokenizer.json"))
    for path in candidates:
        if path.is_file():
            manifest = path.parent / "manifest.json"
            decoder = json.loads(manifest.read_text()).get("decoder", {}) if manifest.is_file() else {}
            fmt = ChatFormat.of_manifest(decoder, str(manifest))
            return Tokenizer.from_file(str(path)), fmt
    raise SystemExit("no decoder tokenizer found: run `npc-sdk export` once (or pass --model DIR)")


def cmd_persona(args: argparse.Namespace) -> int:
    from ..errors import InvalidInputError
    from ..personas.files import load_lorebook, load_persona, validate_files
    from ..personas.problems import PersonaFileError
    from ..personas.prompt import Turn, build_prompt, turn_context

    if args.action == "validate":
        paths = [Path(f) for f in args.files]
        books, rest = [], []
        for path in paths:
            try:
                book = load_lorebook(path)
            except PersonaFileError:
                book = None  # reported by validate_files below
            (books.append((path, book)) if book is not None else rest.append(path))
        personas, problems = validate_files(rest)
        for problem in problems:
            print(problem)
        for path, book in books:
            print(f"{path}: lorebook '{book.name}', {len(book.entries)} entries")
        ok = {p.id for p in personas}
        lorebooks = f", {len(books)} lorebook(s)" if books else ""
        print(f"{len(personas)} valid ({', '.join(sorted(ok))}){lorebooks}, {len(problems)} problem(s)")
        return 1 if problems else 0
    if args.action == "import":
        from ..personas.importer import import_files

        if not args.out:
            raise SystemExit("persona import needs --out DIR")
        try:
            import_files([Path(f) for f in args.files], Path(args.out), overwrite=args.force)
        except PersonaFileError as exc:
            for problem in exc.problems:
                print(problem)
            return 1
        except InvalidInputError as exc:
            print(f"{exc.field}: {exc.message}")
            return 1
        return 0
    if args.action == "export":
        return _export(args)
    persona = load_persona(args.files[0])
    tok, fmt = _decoder_tokenizer(args.model)
    history = [Turn(u, r) for u, r in zip(args.history[::2], args.history[1::2], strict=False)]
    context = turn_context(tok, persona, history, args.text)
    prompt = build_prompt(tok, persona, history, args.text, None, context, fmt=fmt)
    marker = "⟨8 fusion vectors: the screenshot, the line and the persona⟩"
    rendered = tok.decode(prompt.token_ids, skip_special_tokens=False)
    head, sep, tail = rendered.rpartition(fmt.user_start)
    print(f"{head}{sep}{marker}{tail}", end="")
    notes = context.strip() or "none"
    print(f"\n--- {prompt.length} positions + 8 prefix vectors; lore/instructions this turn: {notes}")
    return 0


def _export(args: argparse.Namespace) -> int:
    import json

    from ..personas.card_files import write_png_card
    from ..personas.cards import persona_to_card
    from ..personas.files import load_persona
    from ..personas.problems import PersonaFileError

    if not args.out:
        raise SystemExit("persona export needs --out FILE (.json or .png)")
    try:
        persona = load_persona(args.files[0])
    except PersonaFileError as exc:
        for problem in exc.problems:
            print(problem)
        return 1
    out = Path(args.out)
    if out.suffix == ".png":
        image = Path(args.image).read_bytes() if args.image else _plain_png()
        # V2 backfill in `chara` for older tools, the V3 card in `ccv3` for newer ones (which read it first).
        out.write_bytes(write_png_card(image, persona_to_card(persona, "v2"), persona_to_card(persona, "v3")))
    else:
        card = persona_to_card(persona, args.card_version)
        out.write_text(json.dumps(card, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")
    return 0


def _plain_png() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (400, 600), (64, 64, 72)).save(buf, "PNG")
    return buf.getvalue()


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "persona", help="check persona files, print the exact prompt one produces, import or export cards"
    )
    p.add_argument("action", choices=("validate", "render", "import", "export"))
    p.add_argument(
        "files",
        nargs="+",
        help="persona files: .toml, .json (npc-sdk, Character Card V1/V2/V3, lorebook), .png and .charx cards",
    )
    p.add_argument("--out", help="import: folder for the TOML files; export: the card file (.json or .png)")
    p.add_argument("--force", action="store_true", help="import: replace TOML files that exist")
    p.add_argument("--card-version", choices=("v2", "v3"), default="v3", help="export to .json: card version")
    p.add_argument("--image", help="export to .png: the picture to put the card in (default: a plain one)")
    p.add_argument("--text", default="What is that over there?", help="render: the player's line")
    p.add_argument("--history", nargs="*", default=[], help="render: earlier turns as USER REPLY pairs")
    p.add_argument("--model", help="render: model folder whose tokenizer to use (default: any in the cache)")
    p.set_defaults(func=cmd_persona)
