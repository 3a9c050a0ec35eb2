// NpcClient: a small, engine-neutral C++ client for npc.v1.NpcService (proto/npc/v1/npc.proto).
//
// It is the core an Unreal plugin or a Godot GDExtension wraps: blocking calls, meant to run on a worker
// thread; the delta callback runs on that same thread, so the engine side marshals each delta to its game
// thread (see samples/cpp/README.md). Every call returns a grpc::Status; StatusCodeName() gives the
// canonical name ("INVALID_ARGUMENT", ...). One NpcClient may be shared by several threads.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "npc/v1/npc.grpc.pb.h"

namespace npc {

struct ClientOptions {
  // Sent as metadata "authorization: Bearer <api_key>" when non-empty (the server's --api-key).
  std::string api_key;
  // Insecure (plain TCP) when null: right for loopback; use grpc::SslCredentials with a --tls-cert server.
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  // Deadline of the unary calls (CreateSession, GetSession, DeleteSession).
  std::chrono::milliseconds unary_timeout{30000};
  // Deadline of a whole Chat turn (queueing + prompt + every token), unless ChatOptions says otherwise.
  std::chrono::milliseconds chat_timeout{120000};
  // The server accepts requests up to 64 MiB (a raw 4K RGBA8 frame is 33 MB); gRPC's default is 4 MiB.
  int max_message_bytes = 64 << 20;
};

// A screenshot for Chat: encoded PNG/JPEG bytes, or raw RGBA8/RGB8 pixels with their size.
struct Screenshot {
  npc::v1::Image::Encoding encoding = npc::v1::Image::PNG;
  std::string data;
  int width = 0, height = 0;  // raw encodings only
  bool bottom_up = false;     // raw rows start at the bottom (Unity, glReadPixels, most GPU read-backs)

  // PNG or JPEG bytes (told apart by their signature).
  static Screenshot Encoded(std::string bytes);
  // Raw pixels, width * height * 4 bytes.
  static Screenshot Rgba8(std::string pixels, int width, int height, bool bottom_up = false);
  // Raw pixels, width * height * 3 bytes.
  static Screenshot Rgb8(std::string pixels, int width, int height, bool bottom_up = false);
};

// Cancels a running Chat from any thread (grpc::ClientContext::TryCancel). The server stops that reply
// within a decode step and does not store the turn; Chat then returns CANCELLED. Cancelling before Chat starts
// makes it return CANCELLED at once. One token per Chat call.
class CancelToken {
 public:
  void Cancel();
  bool cancelled() const;

 private:
  friend class NpcClient;
  bool Attach(grpc::ClientContext* context);  // false when already cancelled
  void Detach();

  mutable std::mutex mu_;
  grpc::ClientContext* context_ = nullptr;
  bool cancelled_ = false;
};

// Something the game knows is in view, for ChatOptions::scene: a tag the NPC may say ("slime", "ferryman") and an
// optional proper name. Position and distance are optional: entity.set_x(0.2f) / set_y(0.6f) (0..1 of the screen,
// top-left origin), set_distance(3.0f) (metres).
npc::v1::SceneEntity Entity(const std::string& tag, const std::string& name = "");

// Called at most once per turn, before the first delta, when the player's line asks for one of the persona's
// declared actions (name, typed args as text, confidence): start the animation or the gameplay here.
using ActionCallback = std::function<void(const npc::v1::ActionCall& action)>;

struct ChatOptions {
  npc::v1::GenerationConfig generation;  // unset fields take the persona's / server's defaults
  // Game facts for this line (at most 16): {"player_health": "low"}. Shown to the NPC and checked by actions'
  // `when` conditions; a bad one gets INVALID_ARGUMENT naming it ("state['hp']: must be non-empty text").
  std::map<std::string, std::string> state;
  ActionCallback on_action;  // optional
  // Idempotent turn: a retry with the same turn_id gets the stored reply instead of a new one ([A-Za-z0-9_.:-]{1,64}).
  // With attempts > 1, a call that fails with UNAVAILABLE (server restarting, connection lost) is made again with the
  // same turn_id, up to `attempts` calls and `retry_deadline`; on_delta never sees the same text twice. When retrying
  // and no seed is set, one is derived from turn_id so a re-run of an unstored turn says the same words.
  std::string turn_id;
  int attempts = 1;
  std::chrono::milliseconds retry_deadline{60000};
  // What the game says is in view (at most 32): merged with what the NPC sees in the screenshot. A bad value
  // gets INVALID_ARGUMENT naming it ("scene[0].x: must be in [0, 1] ...").
  std::vector<npc::v1::SceneEntity> scene;
  std::chrono::milliseconds timeout{0};  // 0: ClientOptions::chat_timeout
  CancelToken* cancel = nullptr;
};

struct ChatResult {
  // The server's done event: whole text, finish reason, usage, server timings, and done.seen(): what the NPC saw
  // in the screenshot or was told by ChatOptions::scene, most certain first (tag, score, source "screenshot",
  // "game" or "both"; score 1 for what only the game said).
  // done.emotion(): what the reply carries (label neutral|joy|anger|sadness|fear|surprise|disgust, intensity 0..1),
  // for an emotion-to-animation hook.
  npc::v1::Done done;
  bool has_action = false;         // the line asked for a declared action: it is in `action`
  npc::v1::ActionCall action;
  std::string streamed_text;       // the deltas, concatenated as they arrived
  int deltas = 0;
  double first_delta_ms = -1;      // client side, from the call's start; -1 when no delta arrived
  double total_ms = 0;             // client side, from the call's start to the end of the stream
  int attempts = 0;                // calls made (more than 1 after UNAVAILABLE retries)
};

// Called once per delta, on the thread that called Chat.
using DeltaCallback = std::function<void(const std::string& text)>;

// Scenes of several NPCs (docs/scenes.md). Each event of SceneChat and Converse, on the thread that made the call:
// event.speaker() and event.session_id() say which NPC, event.event() is its action, delta or done as Chat streams
// them, and event.interrupted() marks the last event of a Converse that a SceneChat (or a cancel) cut short.
using SceneCallback = std::function<void(const npc::v1::SceneEvent& event)>;

struct SceneOptions {
  npc::v1::GenerationConfig generation;  // for every line; unset fields take each persona's / the server's defaults
  std::chrono::milliseconds timeout{0};  // the whole call; 0: ClientOptions::chat_timeout
  CancelToken* cancel = nullptr;         // cancelling a Converse ends it as a SceneChat would (the line in flight
                                         // is not stored); the call then returns CANCELLED
};

class NpcClient {
 public:
  explicit NpcClient(const std::string& address, ClientOptions options = {});
  // For a channel the caller built (shared between clients, custom arguments, in-process tests).
  NpcClient(std::shared_ptr<grpc::Channel> channel, ClientOptions options);

  grpc::Status CreateSession(const npc::v1::Persona& persona, npc::v1::Session* session,
                             const std::string& session_id = "");
  // A persona file the server loaded (serve --personas DIR), by its id.
  grpc::Status CreateSessionFromPersonaId(const std::string& persona_id, npc::v1::Session* session,
                                          const std::string& session_id = "");
  grpc::Status GetSession(const std::string& session_id, npc::v1::Session* session);
  grpc::Status DeleteSession(const std::string& session_id);
  // Stops the server as SIGTERM would: turns in flight get its grace period to finish, the store is flushed, the
  // process exits 0. Needs the server's key (a server without one answers PERMISSION_DENIED). turns_in_flight may
  // be null. npc::ServerProcess::Stop() calls it.
  grpc::Status Shutdown(int* turns_in_flight = nullptr);

  // One player turn: on_delta for each delta as it arrives, then the done event lands in result->done.
  // screenshot may be null (the NPC hears but does not see).
  grpc::Status Chat(const std::string& session_id, const std::string& text, const Screenshot* screenshot,
                    const DeltaCallback& on_delta, ChatResult* result, const ChatOptions& options = {});

  // A scene of 2..6 existing sessions (each keeps its own history); scene_id empty: the server picks one.
  grpc::Status CreateScene(const std::vector<std::string>& session_ids, npc::v1::Scene* scene,
                           const std::string& scene_id = "");
  grpc::Status DeleteScene(const std::string& scene_id);  // the sessions stay
  // The player's line to the scene. It interrupts a Converse in flight; the NPC named in it answers (else the most
  // relevant one), streamed to on_event. screenshot may be null.
  grpc::Status SceneChat(const std::string& scene_id, const std::string& text, const Screenshot* screenshot,
                         const SceneCallback& on_event, const SceneOptions& options = {});
  // The NPCs talk among themselves for `turns` lines (1..16), after `topic` (may be empty: heard by all as the
  // narrator's line). Blocks until they are done, or until a SceneChat from another thread cuts in: then
  // *interrupted is true (it may be null).
  grpc::Status Converse(const std::string& scene_id, int turns, const std::string& topic,
                        const Screenshot* screenshot, const SceneCallback& on_event, bool* interrupted,
                        const SceneOptions& options = {});

  npc::v1::NpcService::Stub& stub() { return *stub_; }

 private:
  void Prepare(grpc::ClientContext* context, std::chrono::milliseconds timeout) const;
  grpc::Status DoCreate(const npc::v1::CreateSessionRequest& request, npc::v1::Session* session);
  using SceneReader = std::unique_ptr<grpc::ClientReader<npc::v1::SceneEvent>>;
  grpc::Status StreamScene(const std::function<SceneReader(grpc::ClientContext*)>& start,
                           const SceneCallback& on_event, bool* interrupted, const SceneOptions& options);

  ClientOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<npc::v1::NpcService::Stub> stub_;
};

// "OK", "CANCELLED", "INVALID_ARGUMENT", ... (the canonical gRPC code names).
const char* StatusCodeName(grpc::StatusCode code);

// Reads a whole file into `out`; false when it cannot be read.
bool ReadFile(const std::string& path, std::string* out);

}  // namespace npc
