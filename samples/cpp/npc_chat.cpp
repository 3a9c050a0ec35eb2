// npc_chat: one NPC turn from C++ (creates a session, sends a screenshot and a line, streams the reply).
//
// Output, one record per line, flushed as it happens; after the first space each line is one JSON value
// (strings are ASCII-only JSON: anything else is \u-escaped):
//   SESSION "<session id>"
//   ACTION {"name":"ferry_across","args":{"destination":"Mirewood"},"confidence":0.71}   (at most one, first)
//   DELTA "<text>"            (one per delta, as it arrives)
//   DONE "<whole reply>"
//   FINISH "stop" | "length"
//   EMOTION {"label":"joy","intensity":0.82}
//   SEEN [{"tag":"slime","score":0.930,"source":"screenshot"},...]  (what the NPC saw or was told is in view;
//                                                                   source "screenshot", "game" or "both")
//   USAGE {"prompt_tokens":..,"cached_tokens":..,"completion_tokens":..}
//   SERVER_TIMINGS {"ttft_ms":..,"total_ms":..,"decode_tokens_per_second":..}
//   TTFT_MS <client-side ms to the first delta>
//   TOTAL_MS <client-side ms to the end of the stream>
// On a gRPC error: `ERROR <RPC> <STATUS_NAME> "<message>"` on stderr and exit status 1; bad arguments: 2.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "npc_client.h"

namespace {

const char kUsage[] =
    "usage: npc_chat --text LINE [--address HOST:PORT] [--screenshot FILE.png|.jpg]\n"
    "                [--rgba FILE --size WxH [--bottom-up]]\n"
    "                [--persona-name NAME] [--persona-description TEXT] [--persona-personality TEXT]\n"
    "                [--persona-greeting TEXT] [--persona-id ID] [--session ID]\n"
    "                [--scene TAG[,TAG...] | --scene \"tag=T;name=N;x=X;y=Y;distance=D\"]...\n"
    "                [--state KEY=VALUE]... [--max-tokens N] [--temperature T] [--seed N] [--timeout-ms MS]\n"
    "                [--cancel-after-deltas N] [--api-key KEY] [--turn-id ID [--attempts N]]\n";

// Appends code point `cp` as one or two \uXXXX escapes.
void AppendEscape(std::string* out, unsigned cp) {
  char buf[16];
  if (cp >= 0x10000) {
    cp -= 0x10000;
    std::snprintf(buf, sizeof buf, "\\u%04x\\u%04x", 0xD800 + (cp >> 10), 0xDC00 + (cp & 0x3FF));
  } else {
    std::snprintf(buf, sizeof buf, "\\u%04x", cp);
  }
  *out += buf;
}

// A JSON string literal for UTF-8 `s`, in pure ASCII (invalid UTF-8 becomes U+FFFD).
std::string JsonString(const std::string& s) {
  std::string out = "\"";
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  for (size_t i = 0; i < n;) {
    const unsigned c = p[i];
    if (c < 0x80) {
      switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        default:
          if (c < 0x20 || c == 0x7F) {
            AppendEscape(&out, c);
          } else {
            out += static_cast<char>(c);
          }
      }
      ++i;
      continue;
    }
    size_t len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 0;
    unsigned cp = len == 4 ? c & 0x07 : len == 3 ? c & 0x0F : c & 0x1F;
    bool ok = len != 0 && c < 0xF5 && i + len <= n;
    for (size_t k = 1; ok && k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) {
        ok = false;
      } else {
        cp = (cp << 6) | (p[i + k] & 0x3F);
      }
    }
    const unsigned min_cp = len == 4 ? 0x10000 : len == 3 ? 0x800 : 0x80;
    if (ok && (cp < min_cp || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))) ok = false;
    if (!ok) {
      AppendEscape(&out, 0xFFFD);
      ++i;
      continue;
    }
    AppendEscape(&out, cp);
    i += len;
  }
  out += '"';
  return out;
}

void Line(const char* key, const std::string& json) {
  std::printf("%s %s\n", key, json.c_str());
  std::fflush(stdout);
}

int Fail(const char* rpc, const grpc::Status& status) {
  std::fprintf(stderr, "ERROR %s %s %s\n", rpc, npc::StatusCodeName(status.error_code()),
               JsonString(status.error_message()).c_str());
  return 1;
}

int Usage(const std::string& why) {
  std::fprintf(stderr, "npc_chat: %s\n%s", why.c_str(), kUsage);
  return 2;
}

bool ParseInt(const std::string& s, long long* out) {
  char* end = nullptr;
  *out = std::strtoll(s.c_str(), &end, 10);
  return !s.empty() && *end == '\0';
}

bool ParseFloat(const std::string& s, float* out) {
  char* end = nullptr;
  *out = std::strtof(s.c_str(), &end);
  return !s.empty() && *end == '\0';
}

// --scene "slime,gem" (bare tags), or one entity with its fields: --scene "tag=ferryman;name=Old Tom;x=0.2;y=0.6".
// Values are passed on unchecked: the server validates them (and names the bad field).
bool ParseScene(const std::string& value, std::vector<npc::v1::SceneEntity>* scene, std::string* why) {
  if (value.find('=') == std::string::npos) {
    size_t start = 0;
    while (start <= value.size()) {
      const size_t comma = std::min(value.find(',', start), value.size());
      scene->push_back(npc::Entity(value.substr(start, comma - start)));
      start = comma + 1;
    }
    return true;
  }
  npc::v1::SceneEntity entity;
  size_t start = 0;
  while (start < value.size()) {
    const size_t semi = std::min(value.find(';', start), value.size());
    const std::string pair = value.substr(start, semi - start);
    start = semi + 1;
    const size_t eq = pair.find('=');
    const std::string key = pair.substr(0, eq), field = eq == std::string::npos ? "" : pair.substr(eq + 1);
    float number = 0;
    if (key == "tag") {
      entity.set_tag(field);
    } else if (key == "name") {
      entity.set_name(field);
    } else if ((key == "x" || key == "y" || key == "distance") && ParseFloat(field, &number)) {
      if (key == "x") entity.set_x(number);
      if (key == "y") entity.set_y(number);
      if (key == "distance") entity.set_distance(number);
    } else {
      *why = "--scene: bad field \"" + pair + "\" (tag=, name=, x=, y=, distance=)";
      return false;
    }
  }
  scene->push_back(entity);
  return true;
}

// done.seen() as one JSON array: [{"tag":"slime","score":0.930,"source":"screenshot"},...]
std::string SeenJson(const npc::v1::Done& done) {
  std::string out = "[";
  char score[32];
  for (const npc::v1::SeenTag& seen : done.seen()) {
    std::snprintf(score, sizeof score, "%.3f", seen.score());
    if (out.size() > 1) out += ",";
    out += "{\"tag\":" + JsonString(seen.tag()) + ",\"score\":" + score +
           ",\"source\":" + JsonString(seen.source()) + "}";
  }
  return out + "]";
}

// An action as one JSON object: {"name":"...","args":{"k":"v",...},"confidence":0.71}
std::string ActionJson(const npc::v1::ActionCall& action) {
  std::vector<std::pair<std::string, std::string>> args(action.args().begin(), action.args().end());
  std::sort(args.begin(), args.end());
  std::string out = "{\"name\":" + JsonString(action.name()) + ",\"args\":{";
  for (size_t i = 0; i < args.size(); ++i) {
    out += (i ? "," : "") + JsonString(args[i].first) + ":" + JsonString(args[i].second);
  }
  char confidence[32];
  std::snprintf(confidence, sizeof confidence, "%.3f", action.confidence());
  return out + "},\"confidence\":" + confidence + "}";
}

}  // namespace

int main(int argc, char** argv) {
  std::string address = "127.0.0.1:50051", text, screenshot_path, rgba_path, size, session_id, persona_id;
  bool have_text = false, bottom_up = false;
  npc::ClientOptions client_options;
  npc::ChatOptions chat_options;
  npc::v1::Persona persona;
  persona.set_name("Brakka");
  persona.set_description("A gruff dwarven blacksmith who runs the forge in Emberfall.");
  long long cancel_after = 0;

  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::printf("%s", kUsage);
      return 0;
    }
    if (arg == "--bottom-up") {
      bottom_up = true;
      continue;
    }
    if (i + 1 >= argc) return Usage(arg + " needs a value");
    const std::string value = argv[++i];
    long long number = 0;
    if (arg == "--address") {
      address = value;
    } else if (arg == "--text") {
      text = value;
      have_text = true;
    } else if (arg == "--screenshot") {
      screenshot_path = value;
    } else if (arg == "--rgba") {
      rgba_path = value;
    } else if (arg == "--size") {
      size = value;
    } else if (arg == "--persona-name") {
      persona.set_name(value);
    } else if (arg == "--persona-description") {
      persona.set_description(value);
    } else if (arg == "--persona-personality") {
      persona.set_personality(value);
    } else if (arg == "--persona-greeting") {
      persona.set_greeting(value);
    } else if (arg == "--persona-id") {
      persona_id = value;
    } else if (arg == "--session") {
      session_id = value;
    } else if (arg == "--api-key") {
      client_options.api_key = value;
    } else if (arg == "--scene") {
      std::string why;
      if (!ParseScene(value, &chat_options.scene, &why)) return Usage(why);
    } else if (arg == "--turn-id") {
      chat_options.turn_id = value;
    } else if (arg == "--attempts" && ParseInt(value, &number) && number > 0) {
      chat_options.attempts = static_cast<int>(number);
    } else if (arg == "--state") {
      const size_t eq = value.find('=');
      if (eq == std::string::npos) return Usage("--state needs KEY=VALUE, got " + value);
      chat_options.state[value.substr(0, eq)] = value.substr(eq + 1);
    } else if (arg == "--max-tokens" && ParseInt(value, &number)) {
      chat_options.generation.set_max_tokens(static_cast<int32_t>(number));
    } else if (arg == "--seed" && ParseInt(value, &number)) {
      chat_options.generation.set_seed(static_cast<uint64_t>(number));
    } else if (arg == "--temperature") {
      char* end = nullptr;
      const float t = std::strtof(value.c_str(), &end);
      if (value.empty() || *end != '\0') return Usage("--temperature: not a number: " + value);
      chat_options.generation.set_temperature(t);
    } else if (arg == "--timeout-ms" && ParseInt(value, &number) && number > 0) {
      chat_options.timeout = std::chrono::milliseconds(number);
      client_options.unary_timeout = chat_options.timeout;
    } else if (arg == "--cancel-after-deltas" && ParseInt(value, &number) && number > 0) {
      cancel_after = number;
    } else {
      return Usage("bad argument: " + arg + " " + value);
    }
  }
  if (!have_text) return Usage("--text is required");
  if (!screenshot_path.empty() && !rgba_path.empty()) return Usage("give --screenshot or --rgba, not both");

  npc::Screenshot screenshot;
  const npc::Screenshot* shot = nullptr;
  if (!screenshot_path.empty() || !rgba_path.empty()) {
    const std::string& path = screenshot_path.empty() ? rgba_path : screenshot_path;
    std::string bytes;
    if (!npc::ReadFile(path, &bytes)) return Usage("cannot read " + path);
    if (!screenshot_path.empty()) {
      screenshot = npc::Screenshot::Encoded(std::move(bytes));
    } else {
      int width = 0, height = 0;
      if (std::sscanf(size.c_str(), "%dx%d", &width, &height) != 2) return Usage("--rgba needs --size WxH");
      screenshot = npc::Screenshot::Rgba8(std::move(bytes), width, height, bottom_up);
    }
    shot = &screenshot;
  }

  npc::NpcClient client(address, client_options);
  if (session_id.empty()) {
    npc::v1::Session session;
    const grpc::Status status = persona_id.empty() ? client.CreateSession(persona, &session)
                                                   : client.CreateSessionFromPersonaId(persona_id, &session);
    if (!status.ok()) return Fail("CreateSession", status);
    session_id = session.session_id();
  }
  Line("SESSION", JsonString(session_id));

  npc::CancelToken cancel;
  chat_options.cancel = &cancel;
  // A game starts the animation or the gameplay here, before the reply's text arrives.
  chat_options.on_action = [](const npc::v1::ActionCall& action) { Line("ACTION", ActionJson(action)); };
  long long deltas_so_far = 0;
  npc::ChatResult result;
  const grpc::Status status = client.Chat(
      session_id, text, shot,
      [&](const std::string& delta) {
        Line("DELTA", JsonString(delta));
        // A game would call cancel.Cancel() from its own thread (the player walked away); here: after N deltas.
        if (cancel_after > 0 && ++deltas_so_far == cancel_after) cancel.Cancel();
      },
      &result, chat_options);
  if (!status.ok()) return Fail("Chat", status);

  const npc::v1::Done& done = result.done;
  Line("DONE", JsonString(done.text()));
  Line("FINISH", JsonString(done.finish_reason()));
  Line("REPLAYED", done.replayed() ? "true" : "false");
  Line("SEEN", SeenJson(done));
  char emotion[160];
  std::snprintf(emotion, sizeof emotion, "{\"label\":%s,\"intensity\":%.3f}",
                JsonString(done.emotion().label()).c_str(), done.emotion().intensity());
  Line("EMOTION", emotion);
  char buf[256];
  std::snprintf(buf, sizeof buf, "{\"prompt_tokens\":%d,\"cached_tokens\":%d,\"completion_tokens\":%d}",
                done.usage().prompt_tokens(), done.usage().cached_tokens(), done.usage().completion_tokens());
  Line("USAGE", buf);
  std::snprintf(buf, sizeof buf, "{\"ttft_ms\":%.1f,\"total_ms\":%.1f,\"decode_tokens_per_second\":%.1f}",
                done.timings().ttft_ms(), done.timings().total_ms(), done.timings().decode_tokens_per_second());
  Line("SERVER_TIMINGS", buf);
  std::snprintf(buf, sizeof buf, "%.1f", result.first_delta_ms);
  Line("TTFT_MS", buf);
  std::snprintf(buf, sizeof buf, "%.1f", result.total_ms);
  Line("TOTAL_MS", buf);
  return 0;
}
