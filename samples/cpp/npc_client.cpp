#include "npc_client.h"

#include <algorithm>
#include <thread>

#include <fstream>
#include <iterator>
#include <utility>

namespace npc {

namespace {

using Clock = std::chrono::steady_clock;

double MsSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

Screenshot Raw(npc::v1::Image::Encoding encoding, std::string pixels, int width, int height, bool bottom_up) {
  Screenshot shot;
  shot.encoding = encoding;
  shot.data = std::move(pixels);
  shot.width = width;
  shot.height = height;
  shot.bottom_up = bottom_up;
  return shot;
}

void FillImage(const Screenshot& shot, npc::v1::Image* image) {
  image->set_encoding(shot.encoding);
  image->set_data(shot.data);
  image->set_width(shot.width);
  image->set_height(shot.height);
  image->set_bottom_up(shot.bottom_up);
}

}  // namespace

Screenshot Screenshot::Encoded(std::string bytes) {
  Screenshot shot;
  const bool jpeg = bytes.size() >= 3 && static_cast<unsigned char>(bytes[0]) == 0xFF &&
                    static_cast<unsigned char>(bytes[1]) == 0xD8 && static_cast<unsigned char>(bytes[2]) == 0xFF;
  shot.encoding = jpeg ? npc::v1::Image::JPEG : npc::v1::Image::PNG;
  shot.data = std::move(bytes);
  return shot;
}

Screenshot Screenshot::Rgba8(std::string pixels, int width, int height, bool bottom_up) {
  return Raw(npc::v1::Image::RGBA8, std::move(pixels), width, height, bottom_up);
}

Screenshot Screenshot::Rgb8(std::string pixels, int width, int height, bool bottom_up) {
  return Raw(npc::v1::Image::RGB8, std::move(pixels), width, height, bottom_up);
}

npc::v1::SceneEntity Entity(const std::string& tag, const std::string& name) {
  npc::v1::SceneEntity entity;
  entity.set_tag(tag);
  entity.set_name(name);
  return entity;
}

void CancelToken::Cancel() {
  std::lock_guard<std::mutex> lock(mu_);
  cancelled_ = true;
  if (context_ != nullptr) context_->TryCancel();
}

bool CancelToken::cancelled() const {
  std::lock_guard<std::mutex> lock(mu_);
  return cancelled_;
}

bool CancelToken::Attach(grpc::ClientContext* context) {
  std::lock_guard<std::mutex> lock(mu_);
  if (cancelled_) return false;
  context_ = context;
  return true;
}

void CancelToken::Detach() {
  std::lock_guard<std::mutex> lock(mu_);
  context_ = nullptr;
}

static std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address, const ClientOptions& options) {
  grpc::ChannelArguments args;
  args.SetMaxSendMessageSize(options.max_message_bytes);
  args.SetMaxReceiveMessageSize(options.max_message_bytes);
  auto credentials = options.credentials ? options.credentials : grpc::InsecureChannelCredentials();
  return grpc::CreateCustomChannel(address, credentials, args);
}

NpcClient::NpcClient(const std::string& address, ClientOptions options)
    : NpcClient(MakeChannel(address, options), options) {}

NpcClient::NpcClient(std::shared_ptr<grpc::Channel> channel, ClientOptions options)
    : options_(std::move(options)),
      channel_(std::move(channel)),
      stub_(npc::v1::NpcService::NewStub(channel_)) {}

void NpcClient::Prepare(grpc::ClientContext* context, std::chrono::milliseconds timeout) const {
  if (timeout.count() > 0) context->set_deadline(std::chrono::system_clock::now() + timeout);
  if (!options_.api_key.empty()) context->AddMetadata("authorization", "Bearer " + options_.api_key);
}

grpc::Status NpcClient::DoCreate(const npc::v1::CreateSessionRequest& request, npc::v1::Session* session) {
  grpc::ClientContext context;
  Prepare(&context, options_.unary_timeout);
  return stub_->CreateSession(&context, request, session);
}

grpc::Status NpcClient::CreateSession(const npc::v1::Persona& persona, npc::v1::Session* session,
                                      const std::string& session_id) {
  npc::v1::CreateSessionRequest request;
  *request.mutable_persona() = persona;
  request.set_session_id(session_id);
  return DoCreate(request, session);
}

grpc::Status NpcClient::CreateSessionFromPersonaId(const std::string& persona_id, npc::v1::Session* session,
                                                   const std::string& session_id) {
  npc::v1::CreateSessionRequest request;
  request.set_persona_id(persona_id);
  request.set_session_id(session_id);
  return DoCreate(request, session);
}

grpc::Status NpcClient::GetSession(const std::string& session_id, npc::v1::Session* session) {
  grpc::ClientContext context;
  Prepare(&context, options_.unary_timeout);
  npc::v1::GetSessionRequest request;
  request.set_session_id(session_id);
  return stub_->GetSession(&context, request, session);
}

grpc::Status NpcClient::DeleteSession(const std::string& session_id) {
  grpc::ClientContext context;
  Prepare(&context, options_.unary_timeout);
  npc::v1::DeleteSessionRequest request;
  request.set_session_id(session_id);
  npc::v1::DeleteSessionResponse response;
  return stub_->DeleteSession(&context, request, &response);
}

grpc::Status NpcClient::Shutdown(int* turns_in_flight) {
  grpc::ClientContext context;
  Prepare(&context, options_.unary_timeout);
  npc::v1::ShutdownRequest request;
  npc::v1::ShutdownResponse response;
  grpc::Status status = stub_->Shutdown(&context, request, &response);
  if (status.ok() && turns_in_flight != nullptr) *turns_in_flight = response.turns_in_flight();
  return status;
}

namespace {

// FNV-1a: a seed from the turn id that is the same on every platform and run.
uint64_t SeedOf(const std::string& turn_id) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : turn_id) h = (h ^ c) * 1099511628211ull;
  return h & 0x7fffffffffffffffull;
}

}  // namespace

grpc::Status NpcClient::Chat(const std::string& session_id, const std::string& text, const Screenshot* screenshot,
                             const DeltaCallback& on_delta, ChatResult* result, const ChatOptions& options) {
  ChatResult local;
  ChatResult& out = result != nullptr ? *result : local;
  out = ChatResult();

  npc::v1::ChatRequest request;
  request.set_session_id(session_id);
  request.set_text(text);
  *request.mutable_generation() = options.generation;
  request.mutable_scene()->Add(options.scene.begin(), options.scene.end());
  request.mutable_state()->insert(options.state.begin(), options.state.end());
  request.set_turn_id(options.turn_id);
  if (options.attempts > 1 && !options.turn_id.empty() && !request.generation().has_seed()) {
    request.mutable_generation()->set_seed(SeedOf(options.turn_id));
  }
  if (screenshot != nullptr) FillImage(*screenshot, request.mutable_screenshot());

  const auto start = Clock::now();
  std::chrono::milliseconds backoff{250};
  grpc::Status status;
  for (;;) {
    ++out.attempts;
    grpc::ClientContext context;
    Prepare(&context, options.timeout.count() > 0 ? options.timeout : options_.chat_timeout);
    if (options.cancel != nullptr && !options.cancel->Attach(&context)) {
      return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled before the call started");
    }
    // Detaches the token however this attempt ends, before `context` goes away.
    struct DetachGuard {
      CancelToken* token;
      ~DetachGuard() {
        if (token != nullptr) token->Detach();
      }
    } detach_guard{options.cancel};

    std::unique_ptr<grpc::ClientReader<npc::v1::ChatEvent>> reader = stub_->Chat(&context, request);
    npc::v1::ChatEvent event;
    bool done = false;
    std::string attempt_text;  // this attempt's reply so far; only what extends out.streamed_text is delivered
    while (reader->Read(&event)) {
      if (event.has_action()) {
        if (!out.has_action) {
          out.has_action = true;
          out.action = event.action();
          if (options.on_action) options.on_action(event.action());
        }
      } else if (event.has_delta()) {
        attempt_text += event.delta().text();
        const std::string& seen = out.streamed_text;
        if (attempt_text.size() <= seen.size()) {
          if (seen.compare(0, attempt_text.size(), attempt_text) != 0) {
            context.TryCancel();
            return grpc::Status(grpc::StatusCode::ABORTED, "the retried turn's reply differs from what was streamed");
          }
          continue;
        }
        if (attempt_text.compare(0, seen.size(), seen) != 0) {
          context.TryCancel();
          return grpc::Status(grpc::StatusCode::ABORTED, "the retried turn's reply differs from what was streamed");
        }
        const std::string fresh = attempt_text.substr(seen.size());
        if (out.deltas++ == 0) out.first_delta_ms = MsSince(start);
        out.streamed_text = attempt_text;
        if (on_delta) on_delta(fresh);
      } else if (event.has_done()) {
        out.done = event.done();
        done = true;
      }
    }
    status = reader->Finish();
    out.total_ms = MsSince(start);
    if (status.ok() && !done) {
      return grpc::Status(grpc::StatusCode::INTERNAL, "the stream ended without a done event");
    }
    const bool retry = status.error_code() == grpc::StatusCode::UNAVAILABLE && !options.turn_id.empty() &&
                       out.attempts < options.attempts &&
                       MsSince(start) + static_cast<double>(backoff.count()) <
                           static_cast<double>(options.retry_deadline.count());
    if (!retry) return status;
    std::this_thread::sleep_for(backoff);
    backoff = std::min(backoff * 2, std::chrono::milliseconds(4000));
  }
}

grpc::Status NpcClient::CreateScene(const std::vector<std::string>& session_ids, npc::v1::Scene* scene,
                                    const std::string& scene_id) {
  grpc::ClientContext context;
  Prepare(&context, options_.unary_timeout);
  npc::v1::CreateSceneRequest request;
  request.mutable_session_ids()->Add(session_ids.begin(), session_ids.end());
  request.set_scene_id(scene_id);
  return stub_->CreateScene(&context, request, scene);
}

grpc::Status NpcClient::DeleteScene(const std::string& scene_id) {
  grpc::ClientContext context;
  Prepare(&context, options_.unary_timeout);
  npc::v1::DeleteSceneRequest request;
  request.set_scene_id(scene_id);
  npc::v1::DeleteSceneResponse response;
  return stub_->DeleteScene(&context, request, &response);
}

grpc::Status NpcClient::SceneChat(const std::string& scene_id, const std::string& text, const Screenshot* screenshot,
                                  const SceneCallback& on_event, const SceneOptions& options) {
  npc::v1::SceneChatRequest request;
  request.set_scene_id(scene_id);
  request.set_text(text);
  *request.mutable_generation() = options.generation;
  if (screenshot != nullptr) FillImage(*screenshot, request.mutable_screenshot());
  return StreamScene([&](grpc::ClientContext* context) { return stub_->SceneChat(context, request); }, on_event,
                     nullptr, options);
}

grpc::Status NpcClient::Converse(const std::string& scene_id, int turns, const std::string& topic,
                                 const Screenshot* screenshot, const SceneCallback& on_event, bool* interrupted,
                                 const SceneOptions& options) {
  npc::v1::ConverseRequest request;
  request.set_scene_id(scene_id);
  request.set_turns(turns);
  request.set_topic(topic);
  *request.mutable_generation() = options.generation;
  if (screenshot != nullptr) FillImage(*screenshot, request.mutable_screenshot());
  return StreamScene([&](grpc::ClientContext* context) { return stub_->Converse(context, request); }, on_event,
                     interrupted, options);
}

grpc::Status NpcClient::StreamScene(const std::function<SceneReader(grpc::ClientContext*)>& start,
                                    const SceneCallback& on_event, bool* interrupted, const SceneOptions& options) {
  if (interrupted != nullptr) *interrupted = false;
  grpc::ClientContext context;
  Prepare(&context, options.timeout.count() > 0 ? options.timeout : options_.chat_timeout);
  if (options.cancel != nullptr && !options.cancel->Attach(&context)) {
    return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled before the call started");
  }
  struct DetachGuard {  // detaches the token however the call ends, before `context` goes away
    CancelToken* token;
    ~DetachGuard() {
      if (token != nullptr) token->Detach();
    }
  } detach_guard{options.cancel};
  SceneReader reader = start(&context);
  npc::v1::SceneEvent event;
  while (reader->Read(&event)) {
    if (event.interrupted() && interrupted != nullptr) *interrupted = true;
    if (on_event) on_event(event);
  }
  return reader->Finish();
}

const char* StatusCodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK: return "OK";
    case grpc::StatusCode::CANCELLED: return "CANCELLED";
    case grpc::StatusCode::UNKNOWN: return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED: return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND: return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS: return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED: return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION: return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED: return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE: return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED: return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL: return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE: return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS: return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED: return "UNAUTHENTICATED";
    default: return "UNKNOWN";
  }
}

bool ReadFile(const std::string& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  out->assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return !in.bad();
}

}  // namespace npc
