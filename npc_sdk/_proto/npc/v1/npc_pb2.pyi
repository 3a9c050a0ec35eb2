from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Persona(_message.Message):
    __slots__ = ("name", "description", "personality", "scenario", "greeting", "style", "role_words", "id", "alternate_greetings", "system_prompt", "post_history", "examples", "banned_words", "lore", "lore_budget_tokens", "generation", "lore_scan_turns", "lore_recursion", "actions", "memory_budget_tokens", "memory_group", "memories", "talkativeness")
    class RoleWordsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    PERSONALITY_FIELD_NUMBER: _ClassVar[int]
    SCENARIO_FIELD_NUMBER: _ClassVar[int]
    GREETING_FIELD_NUMBER: _ClassVar[int]
    STYLE_FIELD_NUMBER: _ClassVar[int]
    ROLE_WORDS_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    ALTERNATE_GREETINGS_FIELD_NUMBER: _ClassVar[int]
    SYSTEM_PROMPT_FIELD_NUMBER: _ClassVar[int]
    POST_HISTORY_FIELD_NUMBER: _ClassVar[int]
    EXAMPLES_FIELD_NUMBER: _ClassVar[int]
    BANNED_WORDS_FIELD_NUMBER: _ClassVar[int]
    LORE_FIELD_NUMBER: _ClassVar[int]
    LORE_BUDGET_TOKENS_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    LORE_SCAN_TURNS_FIELD_NUMBER: _ClassVar[int]
    LORE_RECURSION_FIELD_NUMBER: _ClassVar[int]
    ACTIONS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BUDGET_TOKENS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_GROUP_FIELD_NUMBER: _ClassVar[int]
    MEMORIES_FIELD_NUMBER: _ClassVar[int]
    TALKATIVENESS_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    personality: str
    scenario: str
    greeting: str
    style: str
    role_words: _containers.ScalarMap[str, float]
    id: str
    alternate_greetings: _containers.RepeatedScalarFieldContainer[str]
    system_prompt: str
    post_history: str
    examples: _containers.RepeatedCompositeFieldContainer[Example]
    banned_words: _containers.RepeatedScalarFieldContainer[str]
    lore: _containers.RepeatedCompositeFieldContainer[LoreEntry]
    lore_budget_tokens: int
    generation: GenerationConfig
    lore_scan_turns: int
    lore_recursion: int
    actions: _containers.RepeatedCompositeFieldContainer[ActionDecl]
    memory_budget_tokens: int
    memory_group: str
    memories: _containers.RepeatedCompositeFieldContainer[SeedMemory]
    talkativeness: float
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., personality: _Optional[str] = ..., scenario: _Optional[str] = ..., greeting: _Optional[str] = ..., style: _Optional[str] = ..., role_words: _Optional[_Mapping[str, float]] = ..., id: _Optional[str] = ..., alternate_greetings: _Optional[_Iterable[str]] = ..., system_prompt: _Optional[str] = ..., post_history: _Optional[str] = ..., examples: _Optional[_Iterable[_Union[Example, _Mapping]]] = ..., banned_words: _Optional[_Iterable[str]] = ..., lore: _Optional[_Iterable[_Union[LoreEntry, _Mapping]]] = ..., lore_budget_tokens: _Optional[int] = ..., generation: _Optional[_Union[GenerationConfig, _Mapping]] = ..., lore_scan_turns: _Optional[int] = ..., lore_recursion: _Optional[int] = ..., actions: _Optional[_Iterable[_Union[ActionDecl, _Mapping]]] = ..., memory_budget_tokens: _Optional[int] = ..., memory_group: _Optional[str] = ..., memories: _Optional[_Iterable[_Union[SeedMemory, _Mapping]]] = ..., talkativeness: _Optional[float] = ...) -> None: ...

class SeedMemory(_message.Message):
    __slots__ = ("text", "shared")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    SHARED_FIELD_NUMBER: _ClassVar[int]
    text: str
    shared: bool
    def __init__(self, text: _Optional[str] = ..., shared: _Optional[bool] = ...) -> None: ...

class Memory(_message.Message):
    __slots__ = ("id", "npc", "group", "player_id", "text", "source", "created_unix_ms")
    ID_FIELD_NUMBER: _ClassVar[int]
    NPC_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    PLAYER_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    CREATED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    id: str
    npc: str
    group: str
    player_id: str
    text: str
    source: str
    created_unix_ms: int
    def __init__(self, id: _Optional[str] = ..., npc: _Optional[str] = ..., group: _Optional[str] = ..., player_id: _Optional[str] = ..., text: _Optional[str] = ..., source: _Optional[str] = ..., created_unix_ms: _Optional[int] = ...) -> None: ...

class ListMemoriesRequest(_message.Message):
    __slots__ = ("npc", "group", "player_id", "limit")
    NPC_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    PLAYER_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    npc: str
    group: str
    player_id: str
    limit: int
    def __init__(self, npc: _Optional[str] = ..., group: _Optional[str] = ..., player_id: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class ListMemoriesResponse(_message.Message):
    __slots__ = ("memories",)
    MEMORIES_FIELD_NUMBER: _ClassVar[int]
    memories: _containers.RepeatedCompositeFieldContainer[Memory]
    def __init__(self, memories: _Optional[_Iterable[_Union[Memory, _Mapping]]] = ...) -> None: ...

class DeleteMemoryRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class DeleteMemoryResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ForgetPlayerRequest(_message.Message):
    __slots__ = ("player_id",)
    PLAYER_ID_FIELD_NUMBER: _ClassVar[int]
    player_id: str
    def __init__(self, player_id: _Optional[str] = ...) -> None: ...

class ForgetPlayerResponse(_message.Message):
    __slots__ = ("memories_deleted", "sessions_deleted")
    MEMORIES_DELETED_FIELD_NUMBER: _ClassVar[int]
    SESSIONS_DELETED_FIELD_NUMBER: _ClassVar[int]
    memories_deleted: int
    sessions_deleted: int
    def __init__(self, memories_deleted: _Optional[int] = ..., sessions_deleted: _Optional[int] = ...) -> None: ...

class ActionDecl(_message.Message):
    __slots__ = ("name", "description", "examples", "params", "cooldown_turns", "when")
    class ParamsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: ActionParamDecl
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[ActionParamDecl, _Mapping]] = ...) -> None: ...
    class WhenEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: StateValues
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[StateValues, _Mapping]] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    EXAMPLES_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    COOLDOWN_TURNS_FIELD_NUMBER: _ClassVar[int]
    WHEN_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    examples: _containers.RepeatedScalarFieldContainer[str]
    params: _containers.MessageMap[str, ActionParamDecl]
    cooldown_turns: int
    when: _containers.MessageMap[str, StateValues]
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., examples: _Optional[_Iterable[str]] = ..., params: _Optional[_Mapping[str, ActionParamDecl]] = ..., cooldown_turns: _Optional[int] = ..., when: _Optional[_Mapping[str, StateValues]] = ...) -> None: ...

class ActionParamDecl(_message.Message):
    __slots__ = ("type", "choices", "optional", "default")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    CHOICES_FIELD_NUMBER: _ClassVar[int]
    OPTIONAL_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_FIELD_NUMBER: _ClassVar[int]
    type: str
    choices: _containers.RepeatedScalarFieldContainer[str]
    optional: bool
    default: str
    def __init__(self, type: _Optional[str] = ..., choices: _Optional[_Iterable[str]] = ..., optional: _Optional[bool] = ..., default: _Optional[str] = ...) -> None: ...

class StateValues(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, values: _Optional[_Iterable[str]] = ...) -> None: ...

class Example(_message.Message):
    __slots__ = ("user", "npc")
    USER_FIELD_NUMBER: _ClassVar[int]
    NPC_FIELD_NUMBER: _ClassVar[int]
    user: str
    npc: str
    def __init__(self, user: _Optional[str] = ..., npc: _Optional[str] = ...) -> None: ...

class LoreEntry(_message.Message):
    __slots__ = ("keys", "text", "enabled", "order", "secondary_keys", "selective_logic", "constant", "use_regex", "case_sensitive", "whole_words", "priority", "position", "depth", "scan_depth", "name")
    KEYS_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    ORDER_FIELD_NUMBER: _ClassVar[int]
    SECONDARY_KEYS_FIELD_NUMBER: _ClassVar[int]
    SELECTIVE_LOGIC_FIELD_NUMBER: _ClassVar[int]
    CONSTANT_FIELD_NUMBER: _ClassVar[int]
    USE_REGEX_FIELD_NUMBER: _ClassVar[int]
    CASE_SENSITIVE_FIELD_NUMBER: _ClassVar[int]
    WHOLE_WORDS_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    DEPTH_FIELD_NUMBER: _ClassVar[int]
    SCAN_DEPTH_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    keys: _containers.RepeatedScalarFieldContainer[str]
    text: str
    enabled: bool
    order: int
    secondary_keys: _containers.RepeatedScalarFieldContainer[str]
    selective_logic: str
    constant: bool
    use_regex: bool
    case_sensitive: bool
    whole_words: bool
    priority: int
    position: str
    depth: int
    scan_depth: int
    name: str
    def __init__(self, keys: _Optional[_Iterable[str]] = ..., text: _Optional[str] = ..., enabled: _Optional[bool] = ..., order: _Optional[int] = ..., secondary_keys: _Optional[_Iterable[str]] = ..., selective_logic: _Optional[str] = ..., constant: _Optional[bool] = ..., use_regex: _Optional[bool] = ..., case_sensitive: _Optional[bool] = ..., whole_words: _Optional[bool] = ..., priority: _Optional[int] = ..., position: _Optional[str] = ..., depth: _Optional[int] = ..., scan_depth: _Optional[int] = ..., name: _Optional[str] = ...) -> None: ...

class ListPersonasRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListPersonasResponse(_message.Message):
    __slots__ = ("personas", "problems")
    PERSONAS_FIELD_NUMBER: _ClassVar[int]
    PROBLEMS_FIELD_NUMBER: _ClassVar[int]
    personas: _containers.RepeatedCompositeFieldContainer[Persona]
    problems: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, personas: _Optional[_Iterable[_Union[Persona, _Mapping]]] = ..., problems: _Optional[_Iterable[str]] = ...) -> None: ...

class GetPersonaRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class CreateSessionRequest(_message.Message):
    __slots__ = ("persona", "persona_id", "session_id", "player_id")
    PERSONA_FIELD_NUMBER: _ClassVar[int]
    PERSONA_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    PLAYER_ID_FIELD_NUMBER: _ClassVar[int]
    persona: Persona
    persona_id: str
    session_id: str
    player_id: str
    def __init__(self, persona: _Optional[_Union[Persona, _Mapping]] = ..., persona_id: _Optional[str] = ..., session_id: _Optional[str] = ..., player_id: _Optional[str] = ...) -> None: ...

class Turn(_message.Message):
    __slots__ = ("user", "reply", "created_unix_ms")
    USER_FIELD_NUMBER: _ClassVar[int]
    REPLY_FIELD_NUMBER: _ClassVar[int]
    CREATED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    user: str
    reply: str
    created_unix_ms: int
    def __init__(self, user: _Optional[str] = ..., reply: _Optional[str] = ..., created_unix_ms: _Optional[int] = ...) -> None: ...

class Session(_message.Message):
    __slots__ = ("session_id", "persona", "turns", "created_unix_ms", "player_id")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    PERSONA_FIELD_NUMBER: _ClassVar[int]
    TURNS_FIELD_NUMBER: _ClassVar[int]
    CREATED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    PLAYER_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    persona: Persona
    turns: _containers.RepeatedCompositeFieldContainer[Turn]
    created_unix_ms: int
    player_id: str
    def __init__(self, session_id: _Optional[str] = ..., persona: _Optional[_Union[Persona, _Mapping]] = ..., turns: _Optional[_Iterable[_Union[Turn, _Mapping]]] = ..., created_unix_ms: _Optional[int] = ..., player_id: _Optional[str] = ...) -> None: ...

class GetSessionRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class ListSessionsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListSessionsResponse(_message.Message):
    __slots__ = ("sessions", "next_page_token")
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    sessions: _containers.RepeatedCompositeFieldContainer[Session]
    next_page_token: str
    def __init__(self, sessions: _Optional[_Iterable[_Union[Session, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeleteSessionRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class DeleteSessionResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ShutdownRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ShutdownResponse(_message.Message):
    __slots__ = ("turns_in_flight",)
    TURNS_IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    turns_in_flight: int
    def __init__(self, turns_in_flight: _Optional[int] = ...) -> None: ...

class Image(_message.Message):
    __slots__ = ("data", "encoding", "width", "height", "bottom_up")
    class Encoding(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        ENCODING_UNSPECIFIED: _ClassVar[Image.Encoding]
        PNG: _ClassVar[Image.Encoding]
        JPEG: _ClassVar[Image.Encoding]
        RGBA8: _ClassVar[Image.Encoding]
        RGB8: _ClassVar[Image.Encoding]
    ENCODING_UNSPECIFIED: Image.Encoding
    PNG: Image.Encoding
    JPEG: Image.Encoding
    RGBA8: Image.Encoding
    RGB8: Image.Encoding
    DATA_FIELD_NUMBER: _ClassVar[int]
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    BOTTOM_UP_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    encoding: Image.Encoding
    width: int
    height: int
    bottom_up: bool
    def __init__(self, data: _Optional[bytes] = ..., encoding: _Optional[_Union[Image.Encoding, str]] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., bottom_up: _Optional[bool] = ...) -> None: ...

class GenerationConfig(_message.Message):
    __slots__ = ("max_tokens", "temperature", "top_p", "top_k", "repetition_penalty", "seed", "stop", "scene_word_weight", "absent_word_weight", "candidates", "max_sentences", "max_clauses")
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    TOP_P_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    REPETITION_PENALTY_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    STOP_FIELD_NUMBER: _ClassVar[int]
    SCENE_WORD_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    ABSENT_WORD_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    MAX_SENTENCES_FIELD_NUMBER: _ClassVar[int]
    MAX_CLAUSES_FIELD_NUMBER: _ClassVar[int]
    max_tokens: int
    temperature: float
    top_p: float
    top_k: int
    repetition_penalty: float
    seed: int
    stop: _containers.RepeatedScalarFieldContainer[str]
    scene_word_weight: float
    absent_word_weight: float
    candidates: int
    max_sentences: int
    max_clauses: int
    def __init__(self, max_tokens: _Optional[int] = ..., temperature: _Optional[float] = ..., top_p: _Optional[float] = ..., top_k: _Optional[int] = ..., repetition_penalty: _Optional[float] = ..., seed: _Optional[int] = ..., stop: _Optional[_Iterable[str]] = ..., scene_word_weight: _Optional[float] = ..., absent_word_weight: _Optional[float] = ..., candidates: _Optional[int] = ..., max_sentences: _Optional[int] = ..., max_clauses: _Optional[int] = ...) -> None: ...

class SceneEntity(_message.Message):
    __slots__ = ("tag", "name", "x", "y", "distance")
    TAG_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    DISTANCE_FIELD_NUMBER: _ClassVar[int]
    tag: str
    name: str
    x: float
    y: float
    distance: float
    def __init__(self, tag: _Optional[str] = ..., name: _Optional[str] = ..., x: _Optional[float] = ..., y: _Optional[float] = ..., distance: _Optional[float] = ...) -> None: ...

class ChatRequest(_message.Message):
    __slots__ = ("session_id", "text", "screenshot", "generation", "scene", "state", "turn_id", "explain")
    class StateEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    SCREENSHOT_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    SCENE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    TURN_ID_FIELD_NUMBER: _ClassVar[int]
    EXPLAIN_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    text: str
    screenshot: Image
    generation: GenerationConfig
    scene: _containers.RepeatedCompositeFieldContainer[SceneEntity]
    state: _containers.ScalarMap[str, str]
    turn_id: str
    explain: bool
    def __init__(self, session_id: _Optional[str] = ..., text: _Optional[str] = ..., screenshot: _Optional[_Union[Image, _Mapping]] = ..., generation: _Optional[_Union[GenerationConfig, _Mapping]] = ..., scene: _Optional[_Iterable[_Union[SceneEntity, _Mapping]]] = ..., state: _Optional[_Mapping[str, str]] = ..., turn_id: _Optional[str] = ..., explain: _Optional[bool] = ...) -> None: ...

class Usage(_message.Message):
    __slots__ = ("prompt_tokens", "cached_tokens", "completion_tokens")
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHED_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    def __init__(self, prompt_tokens: _Optional[int] = ..., cached_tokens: _Optional[int] = ..., completion_tokens: _Optional[int] = ...) -> None: ...

class Timings(_message.Message):
    __slots__ = ("ttft_ms", "total_ms", "decode_tokens_per_second")
    TTFT_MS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_MS_FIELD_NUMBER: _ClassVar[int]
    DECODE_TOKENS_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    ttft_ms: float
    total_ms: float
    decode_tokens_per_second: float
    def __init__(self, ttft_ms: _Optional[float] = ..., total_ms: _Optional[float] = ..., decode_tokens_per_second: _Optional[float] = ...) -> None: ...

class Delta(_message.Message):
    __slots__ = ("text",)
    TEXT_FIELD_NUMBER: _ClassVar[int]
    text: str
    def __init__(self, text: _Optional[str] = ...) -> None: ...

class SeenTag(_message.Message):
    __slots__ = ("tag", "score", "source")
    TAG_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    tag: str
    score: float
    source: str
    def __init__(self, tag: _Optional[str] = ..., score: _Optional[float] = ..., source: _Optional[str] = ...) -> None: ...

class Done(_message.Message):
    __slots__ = ("text", "finish_reason", "usage", "timings", "seen", "emotion", "replayed", "candidates", "explanation")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    SEEN_FIELD_NUMBER: _ClassVar[int]
    EMOTION_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    EXPLANATION_FIELD_NUMBER: _ClassVar[int]
    text: str
    finish_reason: str
    usage: Usage
    timings: Timings
    seen: _containers.RepeatedCompositeFieldContainer[SeenTag]
    emotion: Emotion
    replayed: bool
    candidates: _containers.RepeatedCompositeFieldContainer[Candidate]
    explanation: Explanation
    def __init__(self, text: _Optional[str] = ..., finish_reason: _Optional[str] = ..., usage: _Optional[_Union[Usage, _Mapping]] = ..., timings: _Optional[_Union[Timings, _Mapping]] = ..., seen: _Optional[_Iterable[_Union[SeenTag, _Mapping]]] = ..., emotion: _Optional[_Union[Emotion, _Mapping]] = ..., replayed: _Optional[bool] = ..., candidates: _Optional[_Iterable[_Union[Candidate, _Mapping]]] = ..., explanation: _Optional[_Union[Explanation, _Mapping]] = ...) -> None: ...

class Explanation(_message.Message):
    __slots__ = ("lore", "memory_note", "recalled_turns", "history_start", "history_turns", "scene_note", "state_note", "action_note", "context", "biased_words", "action", "emotion_scores")
    LORE_FIELD_NUMBER: _ClassVar[int]
    MEMORY_NOTE_FIELD_NUMBER: _ClassVar[int]
    RECALLED_TURNS_FIELD_NUMBER: _ClassVar[int]
    HISTORY_START_FIELD_NUMBER: _ClassVar[int]
    HISTORY_TURNS_FIELD_NUMBER: _ClassVar[int]
    SCENE_NOTE_FIELD_NUMBER: _ClassVar[int]
    STATE_NOTE_FIELD_NUMBER: _ClassVar[int]
    ACTION_NOTE_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    BIASED_WORDS_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    EMOTION_SCORES_FIELD_NUMBER: _ClassVar[int]
    lore: _containers.RepeatedCompositeFieldContainer[LoreHit]
    memory_note: str
    recalled_turns: _containers.RepeatedScalarFieldContainer[int]
    history_start: int
    history_turns: int
    scene_note: str
    state_note: str
    action_note: str
    context: str
    biased_words: _containers.RepeatedCompositeFieldContainer[BiasedWord]
    action: ActionDecision
    emotion_scores: _containers.RepeatedCompositeFieldContainer[Emotion]
    def __init__(self, lore: _Optional[_Iterable[_Union[LoreHit, _Mapping]]] = ..., memory_note: _Optional[str] = ..., recalled_turns: _Optional[_Iterable[int]] = ..., history_start: _Optional[int] = ..., history_turns: _Optional[int] = ..., scene_note: _Optional[str] = ..., state_note: _Optional[str] = ..., action_note: _Optional[str] = ..., context: _Optional[str] = ..., biased_words: _Optional[_Iterable[_Union[BiasedWord, _Mapping]]] = ..., action: _Optional[_Union[ActionDecision, _Mapping]] = ..., emotion_scores: _Optional[_Iterable[_Union[Emotion, _Mapping]]] = ...) -> None: ...

class LoreHit(_message.Message):
    __slots__ = ("index", "name", "keys", "why", "text")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    WHY_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    index: int
    name: str
    keys: _containers.RepeatedScalarFieldContainer[str]
    why: str
    text: str
    def __init__(self, index: _Optional[int] = ..., name: _Optional[str] = ..., keys: _Optional[_Iterable[str]] = ..., why: _Optional[str] = ..., text: _Optional[str] = ...) -> None: ...

class BiasedWord(_message.Message):
    __slots__ = ("word", "weight", "source")
    WORD_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    word: str
    weight: float
    source: str
    def __init__(self, word: _Optional[str] = ..., weight: _Optional[float] = ..., source: _Optional[str] = ...) -> None: ...

class ActionDecision(_message.Message):
    __slots__ = ("name", "score", "request", "threshold", "request_threshold", "best_rejected")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    REQUEST_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    BEST_REJECTED_FIELD_NUMBER: _ClassVar[int]
    name: str
    score: float
    request: float
    threshold: float
    request_threshold: float
    best_rejected: ActionOption
    def __init__(self, name: _Optional[str] = ..., score: _Optional[float] = ..., request: _Optional[float] = ..., threshold: _Optional[float] = ..., request_threshold: _Optional[float] = ..., best_rejected: _Optional[_Union[ActionOption, _Mapping]] = ...) -> None: ...

class ActionOption(_message.Message):
    __slots__ = ("name", "score", "reason")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    name: str
    score: float
    reason: str
    def __init__(self, name: _Optional[str] = ..., score: _Optional[float] = ..., reason: _Optional[str] = ...) -> None: ...

class Candidate(_message.Message):
    __slots__ = ("text", "score", "failed")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    text: str
    score: float
    failed: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, text: _Optional[str] = ..., score: _Optional[float] = ..., failed: _Optional[_Iterable[str]] = ...) -> None: ...

class Emotion(_message.Message):
    __slots__ = ("label", "intensity")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    INTENSITY_FIELD_NUMBER: _ClassVar[int]
    label: str
    intensity: float
    def __init__(self, label: _Optional[str] = ..., intensity: _Optional[float] = ...) -> None: ...

class ActionCall(_message.Message):
    __slots__ = ("name", "args", "confidence")
    class ArgsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    ARGS_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    name: str
    args: _containers.ScalarMap[str, str]
    confidence: float
    def __init__(self, name: _Optional[str] = ..., args: _Optional[_Mapping[str, str]] = ..., confidence: _Optional[float] = ...) -> None: ...

class ChatEvent(_message.Message):
    __slots__ = ("delta", "done", "action")
    DELTA_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    delta: Delta
    done: Done
    action: ActionCall
    def __init__(self, delta: _Optional[_Union[Delta, _Mapping]] = ..., done: _Optional[_Union[Done, _Mapping]] = ..., action: _Optional[_Union[ActionCall, _Mapping]] = ...) -> None: ...

class ExportSessionRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class SessionSnapshot(_message.Message):
    __slots__ = ("format_version", "session_id", "persona", "turns", "created_unix_ms", "signature", "player_id", "memories")
    FORMAT_VERSION_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    PERSONA_FIELD_NUMBER: _ClassVar[int]
    TURNS_FIELD_NUMBER: _ClassVar[int]
    CREATED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    PLAYER_ID_FIELD_NUMBER: _ClassVar[int]
    MEMORIES_FIELD_NUMBER: _ClassVar[int]
    format_version: int
    session_id: str
    persona: Persona
    turns: _containers.RepeatedCompositeFieldContainer[Turn]
    created_unix_ms: int
    signature: bytes
    player_id: str
    memories: _containers.RepeatedCompositeFieldContainer[Memory]
    def __init__(self, format_version: _Optional[int] = ..., session_id: _Optional[str] = ..., persona: _Optional[_Union[Persona, _Mapping]] = ..., turns: _Optional[_Iterable[_Union[Turn, _Mapping]]] = ..., created_unix_ms: _Optional[int] = ..., signature: _Optional[bytes] = ..., player_id: _Optional[str] = ..., memories: _Optional[_Iterable[_Union[Memory, _Mapping]]] = ...) -> None: ...

class CreateSceneRequest(_message.Message):
    __slots__ = ("session_ids", "scene_id")
    SESSION_IDS_FIELD_NUMBER: _ClassVar[int]
    SCENE_ID_FIELD_NUMBER: _ClassVar[int]
    session_ids: _containers.RepeatedScalarFieldContainer[str]
    scene_id: str
    def __init__(self, session_ids: _Optional[_Iterable[str]] = ..., scene_id: _Optional[str] = ...) -> None: ...

class SceneMember(_message.Message):
    __slots__ = ("session_id", "name", "lines_heard")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    LINES_HEARD_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    name: str
    lines_heard: int
    def __init__(self, session_id: _Optional[str] = ..., name: _Optional[str] = ..., lines_heard: _Optional[int] = ...) -> None: ...

class Scene(_message.Message):
    __slots__ = ("scene_id", "members", "created_unix_ms")
    SCENE_ID_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    CREATED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    scene_id: str
    members: _containers.RepeatedCompositeFieldContainer[SceneMember]
    created_unix_ms: int
    def __init__(self, scene_id: _Optional[str] = ..., members: _Optional[_Iterable[_Union[SceneMember, _Mapping]]] = ..., created_unix_ms: _Optional[int] = ...) -> None: ...

class GetSceneRequest(_message.Message):
    __slots__ = ("scene_id",)
    SCENE_ID_FIELD_NUMBER: _ClassVar[int]
    scene_id: str
    def __init__(self, scene_id: _Optional[str] = ...) -> None: ...

class DeleteSceneRequest(_message.Message):
    __slots__ = ("scene_id",)
    SCENE_ID_FIELD_NUMBER: _ClassVar[int]
    scene_id: str
    def __init__(self, scene_id: _Optional[str] = ...) -> None: ...

class DeleteSceneResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SceneChatRequest(_message.Message):
    __slots__ = ("scene_id", "text", "speaker", "responder_session_id", "no_reply", "screenshot", "scene", "state", "generation")
    class StateEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SCENE_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    SPEAKER_FIELD_NUMBER: _ClassVar[int]
    RESPONDER_SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    NO_REPLY_FIELD_NUMBER: _ClassVar[int]
    SCREENSHOT_FIELD_NUMBER: _ClassVar[int]
    SCENE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    scene_id: str
    text: str
    speaker: str
    responder_session_id: str
    no_reply: bool
    screenshot: Image
    scene: _containers.RepeatedCompositeFieldContainer[SceneEntity]
    state: _containers.ScalarMap[str, str]
    generation: GenerationConfig
    def __init__(self, scene_id: _Optional[str] = ..., text: _Optional[str] = ..., speaker: _Optional[str] = ..., responder_session_id: _Optional[str] = ..., no_reply: _Optional[bool] = ..., screenshot: _Optional[_Union[Image, _Mapping]] = ..., scene: _Optional[_Iterable[_Union[SceneEntity, _Mapping]]] = ..., state: _Optional[_Mapping[str, str]] = ..., generation: _Optional[_Union[GenerationConfig, _Mapping]] = ...) -> None: ...

class ConverseRequest(_message.Message):
    __slots__ = ("scene_id", "turns", "topic", "screenshot", "scene", "state", "generation")
    class StateEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SCENE_ID_FIELD_NUMBER: _ClassVar[int]
    TURNS_FIELD_NUMBER: _ClassVar[int]
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    SCREENSHOT_FIELD_NUMBER: _ClassVar[int]
    SCENE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    scene_id: str
    turns: int
    topic: str
    screenshot: Image
    scene: _containers.RepeatedCompositeFieldContainer[SceneEntity]
    state: _containers.ScalarMap[str, str]
    generation: GenerationConfig
    def __init__(self, scene_id: _Optional[str] = ..., turns: _Optional[int] = ..., topic: _Optional[str] = ..., screenshot: _Optional[_Union[Image, _Mapping]] = ..., scene: _Optional[_Iterable[_Union[SceneEntity, _Mapping]]] = ..., state: _Optional[_Mapping[str, str]] = ..., generation: _Optional[_Union[GenerationConfig, _Mapping]] = ...) -> None: ...

class SceneEvent(_message.Message):
    __slots__ = ("session_id", "speaker", "event", "interrupted")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    SPEAKER_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    INTERRUPTED_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    speaker: str
    event: ChatEvent
    interrupted: bool
    def __init__(self, session_id: _Optional[str] = ..., speaker: _Optional[str] = ..., event: _Optional[_Union[ChatEvent, _Mapping]] = ..., interrupted: _Optional[bool] = ...) -> None: ...
