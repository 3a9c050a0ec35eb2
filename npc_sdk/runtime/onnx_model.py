"""OnnxNpcModel: a model folder run with onnxruntime alone (no torch): encoders, fusion and the KV-cache decoder."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from ..errors import NpcError
from ..personas.chat_format import ChatFormat
from ..personas.persona import Persona
from ..personas.prompt import MAX_PERSONA_TOKENS, Prompt, Turn, check_text, persona_block, turn_prompt
from .actions import ActionDecider
from .critic import ReplyCritic
from .decode_loop import stream_reply
from .decoder_runner import DecoderRunner
from .emotion import EmotionClassifier
from .events import Done, Emotion, ReplyEvent
from .generation import GenerationConfig
from .images import ImageInput, preprocess
from .kv_cache import KVCache, KVSnapshot
from .model_folder import ModelFolder
from .sampling import TokenSampler, make_sampler
from .scene import SceneEntity, SceneFacts, TagSpec, check_entities, merge, scene_words, seen_tags
from .text_tokens import ROLE_MAX_TOKENS, TEXT_MAX_TOKENS, encode_batch, encoder_tokenizer

# Positions per cache slot: persona + history + this turn + reply. Pages are committed only as positions are
# written (kv_cache._lazy_zeros) and attention reads only the filled part, so a long context costs memory only
# for the sessions that reach it: 46 KB a position for SmolLM2-135M (docs/personas.md, "Long cards").
DEFAULT_MAX_LEN = 4096
TURN_RESERVE = 1024  # positions kept free of the persona block for history, this turn and the reply


def providers_for(device: str) -> list[str]:
    """onnxruntime providers for "cpu" or "cuda"; asking for CUDA where it is absent is an error, not a fallback."""
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device == "cuda":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise NpcError(
                "device 'cuda' asked for, but this onnxruntime has no CUDA provider (pip install .[gpu])"
            )
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    raise NpcError(f"device must be 'cpu' or 'cuda', got {device!r}")


class SlotSource:
    """The decode-loop interface over one cache slot."""

    def __init__(self, model: OnnxNpcModel, slot: int) -> None:
        self.model = model
        self.slot = slot

    def prefill(self, embeds: np.ndarray) -> np.ndarray:
        return self.model.runner.run(self.slot, embeds[None])[0]

    def step(self, token_id: int) -> np.ndarray:
        return self.model.runner.run(self.slot, self.model.embed_ids([token_id])[None])[0]


class OnnxNpcModel:
    def __init__(
        self,
        folder: ModelFolder,
        *,
        device: str = "cpu",
        threads: int | None = None,
        slots: int = 1,
        max_len: int = DEFAULT_MAX_LEN,
        prefill_graph: bool = True,
    ) -> None:
        """`prefill_graph` False leaves decoder_prefill.onnx unloaded (~190 MB less RSS, prefills ~2x slower)."""
        self.folder = folder
        manifest = folder.manifest
        providers = providers_for(device)

        def session(component: str) -> ort.InferenceSession:
            options = ort.SessionOptions()
            options.log_severity_level = 3
            if threads:
                options.intra_op_num_threads = threads
            # Each session has its own thread pool, and idle pool threads spin for a while: encoder threads left
            # spinning after a turn's encoding steal the cores from the decoder's prefill right after (measured: a
            # 39-position prefill went from ~50 to ~110 ms), so encoders never spin. The two decoder graphs spin
            # between their ops but stop when a call ends: decode-step threads still spinning slowed the prefill
            # after a step by 1.5x, and prefill threads the steps after it (single-session decode 143 vs 175 tok/s).
            if component in ("decoder", "decoder_prefill"):
                options.add_session_config_entry("session.force_spinning_stop", "1")
            else:
                options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            return ort.InferenceSession(str(folder.file(component)), options, providers=providers)

        self.image_session = session("image_encoder")
        self.text_session = session("text_encoder")
        self.fusion_session = session("fusion")
        self.decoder_session = session("decoder")
        # The integer-GEMM graph for prefills (export/quantize.py), where the export wrote one. Its u8 x s8 GEMM is a
        # CPU kernel: on CUDA every call stays on decoder.onnx.
        self.prefill_session = (
            session("decoder_prefill")
            if prefill_graph and "decoder_prefill" in manifest["model"] and device == "cpu"
            else None
        )
        self.table = np.load(
            folder.file("embeddings"), mmap_mode="r"
        )  # [vocab, hidden], read a row at a time
        self.tokenizer = Tokenizer.from_file(str(folder.file("tokenizer")))
        self.text_tokenizer = encoder_tokenizer(str(folder.file("text_tokenizer")))
        dec = manifest["decoder"]
        self.chat_format = ChatFormat.of_manifest(dec)
        source = dec.get("source", {})
        self.decoder_name = str(source.get("name", "smollm2-135m-instruct"))
        self.decoder_given = str(source.get("given", ""))  # the GGUF/folder exported from; "" for the default
        self.eos_id = int(dec["eos_token_id"])
        self.vocab_size = int(dec["vocab"])
        self.hidden_size = int(dec["hidden"])
        self.fusion_config = manifest["fusion"]["config"]
        self.fusion_trained = bool(manifest["fusion"]["trained"])
        self.tags = [
            TagSpec(t["name"], tuple(t["words"]), t.get("kind", "thing"), float(t["threshold"]))
            for t in manifest["fusion"].get("tags", [])
        ]
        self.cache = KVCache(
            dec["layers"], dec["kv_heads"], dec["head_dim"], slots, min(max_len, dec["max_positions"])
        )
        # A long card is trimmed to this (personas/prompt.py:fit_persona) rather than refused.
        self.persona_tokens = max(256, min(MAX_PERSONA_TOKENS, self.cache.max_len - TURN_RESERVE))
        self.runner = DecoderRunner(
            self.decoder_session, self.cache, self.vocab_size, device, prefill_session=self.prefill_session
        )
        self._free_slots = list(range(slots))
        self._role_cache: dict[str, np.ndarray] = {}
        # KV state of persona blocks (system message + greeting), shared by every session of that persona: a new
        # session's first turn then prefills only its own line (~25 positions instead of ~130).
        self.persona_kv: OrderedDict[tuple[int, ...], KVSnapshot] = OrderedDict()
        self.persona_kv_entries = 16
        self._lazy_lock = threading.Lock()
        self._action_decider: ActionDecider | None = None
        self._critic: ReplyCritic | None = None
        self._emotions: EmotionClassifier | None = None
        # Long cards make persona blocks of ~2,000 positions (~90 MB of KV each): bound the bytes too.
        self.persona_kv_bytes = 256 * 1024 * 1024

    def separate_runner(self, slots: int = 1, *, prefill_graph: bool = True) -> DecoderRunner:
        """A runner over new KV buffers with this model's graphs, for measuring and checking beside the served
        slots; `prefill_graph` False runs every call on decoder.onnx."""
        layers2, _, kv_heads, max_len, head_dim = self.cache.buffers.shape
        return DecoderRunner(
            self.decoder_session,
            KVCache(layers2 // 2, kv_heads, head_dim, slots, max_len),
            self.vocab_size,
            self.runner.device,
            prefill_session=self.prefill_session if prefill_graph else None,
        )

    @classmethod
    def load(cls, path: str | Path, *, verify: bool = True, **kwargs) -> OnnxNpcModel:
        """Open a model folder (every file checked against the manifest's sha256 unless `verify` is False)."""
        return cls(ModelFolder.open(path, verify=verify), **kwargs)

    def describe(self) -> str:
        fusion = "trained" if self.fusion_trained else "untrained (gate 0, prefix vectors are zero)"
        return f"onnxruntime {self.folder.precision} model at {self.folder.path}; fusion weights: {fusion}"

    # ---- slots -------------------------------------------------------------------------------------------
    def acquire_slot(self) -> int:
        if not self._free_slots:
            raise NpcError(f"all {self.cache.slots} decoder slots are in use")
        slot = self._free_slots.pop(0)
        self.cache.lengths[slot] = 0
        return slot

    @property
    def free_slots(self) -> int:
        return len(self._free_slots)

    def try_acquire_slots(self, n: int) -> list[int]:
        """Up to `n` free slots (fewer, or none, when the pool is short): best of N takes what is spare."""
        return [self.acquire_slot() for _ in range(min(n, len(self._free_slots)))]

    @property
    def critic(self) -> ReplyCritic:
        """The reply critic over this model's sentence encoder (best of N, eval)."""
        if self._critic is None:
            self._critic = ReplyCritic(self.sentence_vectors)
        return self._critic

    def release_slot(self, slot: int) -> None:
        self.cache.lengths[slot] = 0
        self._free_slots.append(slot)
        self._free_slots.sort()

    def persona_block(self, persona: Persona) -> list[int]:
        """The tokens every prompt of `persona` starts with, in this decoder's chat format (fitted to the budget)."""
        return persona_block(self.tokenizer, persona, self.persona_tokens, self.chat_format)

    def usable_history(self, turns: Sequence[Turn]) -> list[Turn]:
        """Stored turns as this model can replay them: fusion vectors kept only where this decoder's trained
        projector could have made them. A session stored under another decoder (a deployment that switched
        models) keeps every word of its history; the vectors, which belong to the old decoder, are dropped."""
        keep = self.fusion_trained
        return [
            t
            if t.prefix is None or (keep and t.prefix.shape[-1] == self.hidden_size)
            else Turn(t.user, t.reply, None, t.context)
            for t in turns
        ]

    # ---- persona KV cache ----------------------------------------------------------------------------------
    def cached_persona_kv(self, block: Sequence[int]) -> KVSnapshot | None:
        snap = self.persona_kv.get(tuple(block))
        if snap is not None:
            self.persona_kv.move_to_end(tuple(block))
        return snap

    def remember_persona_kv(self, block: Sequence[int], slot: int) -> None:
        key = tuple(block)
        if key in self.persona_kv or self.cache.lengths[slot] < len(key):
            return
        self.persona_kv[key] = self.cache.snapshot(slot, len(key))
        while len(self.persona_kv) > 1 and (
            len(self.persona_kv) > self.persona_kv_entries
            or sum(s.nbytes for s in self.persona_kv.values()) > self.persona_kv_bytes
        ):
            self.persona_kv.popitem(last=False)

    # ---- encoders and fusion -----------------------------------------------------------------------------
    def embed_ids(self, ids: Sequence[int]) -> np.ndarray:
        return np.asarray(self.table[np.asarray(ids, dtype=np.int64)], dtype=np.float32)

    def embed(self, prompt: Prompt) -> np.ndarray:
        return prompt.embed(self.table)

    def encode_image(self, image: ImageInput) -> tuple[np.ndarray, np.ndarray]:
        """v_I [1, 112, 1280] and v_mid [1, 448, 112]."""
        v_I, v_mid = self.image_session.run(["v_I", "v_mid"], {"pixels": preprocess(image)})
        return v_I, v_mid

    def encode_text(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """v_T [1, L, 384] and its mask [1, L]."""
        ids, mask = encode_batch(self.text_tokenizer, [check_text(text)], TEXT_MAX_TOKENS)
        return self.text_session.run(["token_states"], {"input_ids": ids, "attention_mask": mask})[0], mask

    def encode_role(self, persona: Persona) -> np.ndarray:
        """v_R [1, 384], once per distinct persona text."""
        key = persona.role_text()
        if key not in self._role_cache:
            self._role_cache[key] = self.sentence_vectors([key])
        return self._role_cache[key]

    @property
    def action_decider(self) -> ActionDecider:
        """Built on first use (trains the request detector: a fraction of a second)."""
        with self._lazy_lock:
            if self._action_decider is None:
                self._action_decider = ActionDecider(self.sentence_vectors)
            return self._action_decider

    def emotion(self, reply: str, line: str = "", line_vector: np.ndarray | None = None) -> Emotion:
        """The emotion a reply carries (one text-encoder pass; the line's too unless its vector is given)."""
        with self._lazy_lock:
            if self._emotions is None:
                self._emotions = EmotionClassifier(self.sentence_vectors)
        found = self._emotions.classify(reply, line, line_vector=line_vector) if reply.strip() else None
        return Emotion(found.label, found.intensity) if found else Emotion("neutral", 0.0)

    def sentence_vectors(self, texts: Sequence[str]) -> np.ndarray:
        """[N, 384] pooled role-encoder vectors: the space v_R lives in (persona identification uses it)."""
        ids, mask = encode_batch(self.text_tokenizer, list(texts), ROLE_MAX_TOKENS)
        return self.text_session.run(["pooled"], {"input_ids": ids, "attention_mask": mask})[0]

    def fuse(self, text: str, persona: Persona, screenshot: ImageInput | None = None) -> np.ndarray:
        """The K prefix vectors [K, hidden] for this turn."""
        return self.see(text, persona, screenshot)[0]

    def see(
        self, text: str, persona: Persona, screenshot: ImageInput | None = None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """The K prefix vectors [K, hidden], and the head's probability per tag [n_tags] (None without a picture)."""
        if screenshot is None and not self.fusion_trained:
            return None, None  # nothing the fusion graph could add: no vectors, no picture to tag
        v_T, mask = self.encode_text(text)
        cfg = self.fusion_config
        if screenshot is None:
            v_I = np.zeros((1, cfg["image_cells"], cfg["image_dim"]), dtype=np.float32)
            v_mid = np.zeros((1, 4 * cfg["image_cells"], cfg["mid_dim"]), dtype=np.float32)
            has_image = np.zeros(1, dtype=np.float32)
        else:
            (v_I, v_mid), has_image = self.encode_image(screenshot), np.ones(1, dtype=np.float32)
        feeds = {
            "v_I": v_I,
            "v_mid": v_mid,
            "has_image": has_image,
            "v_T": v_T,
            "text_mask": mask.astype(np.float32),
            "v_R": self.encode_role(persona),
        }
        prefix, tag_probs = self.fusion_session.run(["prefix", "tag_probs"], feeds)
        # An untrained projector gives zero vectors: the decoder gets no prefix positions rather than K zeros.
        vectors = prefix[0] if self.fusion_trained else None
        return vectors, (tag_probs[0] if screenshot is not None else None)

    def scene_facts(self, tag_probs: np.ndarray | None, entities: Sequence[SceneEntity] = ()) -> SceneFacts:
        """What the NPC knows is in view: the head's tags past their thresholds and the game's entities."""
        return merge(tag_probs if self.tags else None, self.tags, check_entities(entities))

    def sampler(
        self,
        persona: Persona,
        config: GenerationConfig,
        facts: SceneFacts | None = None,
        recent_replies: Sequence[str] = (),
    ) -> TokenSampler:
        words = scene_words(facts, self.tags, config) if facts is not None else None
        return make_sampler(
            self.tokenizer, persona, config, self.vocab_size, self.eos_id, words, recent_replies
        )

    # ---- one stateless turn (the reference's API) ----------------------------------------------------------
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
    ) -> Iterator[ReplyEvent]:
        """A turn from an empty cache; for dialogues that reuse their KV state, use `Conversation`.

        `scene` lists what the game says is in view; with a screenshot, the image head's tags join it.
        """
        config = config or persona.generation_defaults()
        started = time.perf_counter()
        check_text(text)
        facts = self.scene_facts(None, scene)
        if use_prefix and prefix is None:
            prefix, tag_probs = self.see(text, persona, screenshot)
            facts = self.scene_facts(tag_probs, scene)
        elif not use_prefix:
            prefix = None
        prompt = turn_prompt(
            self.tokenizer,
            persona,
            history,
            text,
            prefix,
            facts.note(),
            self.persona_tokens,
            self.chat_format,
        )
        slot = self.acquire_slot()
        try:
            yield from stream_reply(
                SlotSource(self, slot),
                self.embed(prompt),
                tokenizer=self.tokenizer,
                config=config,
                sampler=self.sampler(persona, config, facts, [t.reply for t in history][-2:]),
                eos_id=self.eos_id,
                started=started,
                seen=seen_tags(facts),
            )
        finally:
            self.release_slot(slot)

    def reply(self, text: str, **kwargs) -> Done:
        *_, done = self.stream(text, **kwargs)
        assert isinstance(done, Done)
        return done
