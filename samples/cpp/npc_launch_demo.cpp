// npc_launch_demo: a game's view of npc::ServerProcess. It starts the server, talks to an NPC, kills the server
// (SIGKILL) while a reply is streaming, waits for the supervisor to bring it back on a new port, reconnects and
// carries on the same session, then stops the server.
//
//   npc_launch_demo [--data-dir DIR] [--threads N] [--nice N] [--max-tokens N] [--timeout-ms MS] [--hold]
//                   -- SERVER COMMAND...
//   e.g. npc_launch_demo --data-dir /tmp/npc -- python3 -m npc_sdk.cli serve --model <model folder>
//
// Output: one JSON object per line on stdout, flushed as it happens, each with an "event":
//   ready (from the supervisor: generation, pid, port), key (the key is 32 hex characters, in the child's environment
//   and not on its command line; Linux /proc only, else null), health, session, turn (n, text, reply), killing,
//   turn_failed (the killed turn's status and the text streamed before the kill), exited, restarting, back,
//   history (the session's stored turns), stopped (the supervisor's event), stop_result (what Stop() did), gone,
//   and last result {"ok": ..., "why": ...}.
// The server's own log lines go to stderr, prefixed "server: ". Exit status 0 only when the session carried on:
// after the restart it holds the first turn and not the killed one, and takes a new turn. Bad arguments exit 2.
//
// --hold: start the server, make one turn, print {"event": "holding", ...} and wait to be killed, to show that the
// server ends by itself when the game does (--parent-pid).
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#ifndef _WIN32
#include <csignal>
#include <fstream>
#include <iterator>
#include <sys/types.h>
#include <unistd.h>
#endif

#include "npc_client.h"
#include "npc_server_process.h"

namespace {

const char kUsage[] =
    "usage: npc_launch_demo [--data-dir DIR] [--threads N] [--nice N] [--max-tokens N] [--timeout-ms MS] [--hold]\n"
    "                       -- SERVER COMMAND...\n";

std::mutex print_mu;

std::string Json(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20 || c == 0x7F) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);  // UTF-8 passes through
        }
    }
  }
  return out + "\"";
}

// {"event": NAME, FIELDS}: fields is already JSON ("\"n\":1,\"text\":\"...\"") or empty.
void Print(const std::string& name, const std::string& fields = "") {
  std::lock_guard<std::mutex> lock(print_mu);
  std::printf("{\"event\":%s%s%s}\n", Json(name).c_str(), fields.empty() ? "" : ",", fields.c_str());
  std::fflush(stdout);
}

std::string Field(const char* key, const std::string& json_value) { return Json(key) + ":" + json_value; }
std::string Field(const char* key, long long value) { return Json(key) + ":" + std::to_string(value); }
std::string FieldBool(const char* key, bool value) { return Json(key) + ":" + (value ? "true" : "false"); }

std::string Join(std::initializer_list<std::string> fields) {
  std::string out;
  for (const std::string& f : fields) {
    if (f.empty()) continue;
    if (!out.empty()) out += ",";
    out += f;
  }
  return out;
}

void PrintEvent(const npc::ServerEvent& e) {
  Print(npc::ServerEventName(e.kind),
        Join({Field("generation", static_cast<long long>(e.generation)), Field("pid", e.pid), Field("port", e.port),
              Field("exit_code", e.exit_code), Field("signal", e.signal),
              Field("delay_ms", static_cast<long long>(e.delay.count())), Field("message", Json(e.message))}));
}

// "true"/"false" for whether the key shows in the child's command line or environment (Linux /proc), else "null".
std::string InProc(long pid, const char* file, const std::string& key) {
#ifndef _WIN32
  std::ifstream in("/proc/" + std::to_string(pid) + "/" + file, std::ios::binary);
  if (!in) return "null";
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return data.find(key) != std::string::npos ? "true" : "false";
#else
  (void)pid;
  (void)file;
  (void)key;
  return "null";
#endif
}

bool Alive(long pid) {
#ifndef _WIN32
  if (kill(static_cast<pid_t>(pid), 0) != 0) return false;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");  // a zombie still answers signal 0
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  const size_t paren = text.rfind(')');
  return paren == std::string::npos || text.compare(paren + 2, 1, "Z") != 0;
#else
  (void)pid;
  return false;
#endif
}

void KillHard(long pid) {
#ifndef _WIN32
  kill(static_cast<pid_t>(pid), SIGKILL);
#else
  (void)pid;
#endif
}

struct Turn {
  grpc::Status status;
  npc::ChatResult result;
};

Turn Say(npc::NpcClient& client, const std::string& session_id, const std::string& text, int max_tokens,
         int max_sentences, const npc::DeltaCallback& on_delta = nullptr) {
  npc::ChatOptions options;
  options.generation.set_max_tokens(max_tokens);
  if (max_sentences >= 0) options.generation.set_max_sentences(max_sentences);
  Turn turn;
  turn.status = client.Chat(session_id, text, nullptr, on_delta, &turn.result, options);
  return turn;
}

void PrintTurn(int n, const std::string& text, const Turn& turn) {
  Print("turn", Join({Field("n", n), Field("text", Json(text)), Field("reply", Json(turn.result.done.text())),
                      Field("finish", Json(turn.result.done.finish_reason()))}));
}

std::string History(const npc::v1::Session& session) {
  std::string turns = "[";
  for (int i = 0; i < session.turns_size(); ++i) {
    if (i > 0) turns += ",";
    turns += "{" + Join({Field("user", Json(session.turns(i).user())), Field("reply", Json(session.turns(i).reply()))}) +
             "}";
  }
  return turns + "]";
}

int Fail(const std::string& why) {
  Print("result", Join({FieldBool("ok", false), Field("why", Json(why))}));
  return 1;
}

int Fail(const char* what, const grpc::Status& status) {
  return Fail(std::string(what) + ": " + npc::StatusCodeName(status.error_code()) + " " + status.error_message());
}

}  // namespace

int main(int argc, char** argv) {
  npc::ServerProcessOptions options;
  int max_tokens = 24;
  long timeout_ms = 600000;
  bool hold = false;
  int i = 1;
  for (; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n%s", arg.c_str(), kUsage);
        std::exit(2);
      }
      return argv[++i];
    };
    if (arg == "--") {
      ++i;
      break;
    } else if (arg == "--data-dir") {
      options.data_dir = value();
    } else if (arg == "--threads") {
      options.threads = std::atoi(value().c_str());
    } else if (arg == "--nice") {
      options.niceness = std::atoi(value().c_str());
    } else if (arg == "--max-tokens") {
      max_tokens = std::atoi(value().c_str());
    } else if (arg == "--timeout-ms") {
      timeout_ms = std::atol(value().c_str());
    } else if (arg == "--hold") {
      hold = true;
    } else {
      std::fprintf(stderr, "unknown argument %s\n%s", arg.c_str(), kUsage);
      return 2;
    }
  }
  for (; i < argc; ++i) options.command.push_back(argv[i]);
  if (options.command.empty()) {
    std::fprintf(stderr, "no server command after --\n%s", kUsage);
    return 2;
  }
  const std::chrono::milliseconds timeout(timeout_ms);
  options.ready_timeout = timeout;
  options.health_timeout = std::chrono::milliseconds(20000);  // a busy machine answers slowly; a dead one not at all
  options.on_event = PrintEvent;
  options.on_log = [](const std::string& line) {
    std::lock_guard<std::mutex> lock(print_mu);
    std::fprintf(stderr, "server: %s\n", line.c_str());
  };

  npc::ServerProcess server(options);
  std::string error;
  if (!server.Start(&error)) return Fail("start: " + error);
  const std::string key = server.api_key();
  const long first_pid = server.pid();
  bool hex = key.size() == 32;
  for (char c : key) hex = hex && std::strchr("0123456789abcdef", c) != nullptr;
  Print("key", Join({Field("chars", static_cast<long long>(key.size())), FieldBool("hex", hex),
                     Field("in_command_line", InProc(first_pid, "cmdline", key)),
                     Field("in_environment", InProc(first_pid, "environ", "NPC_SDK_API_KEY=" + key))}));
  const grpc::Status health = server.CheckHealth(std::chrono::milliseconds(30000));
  Print("health", Field("status", Json(npc::StatusCodeName(health.error_code()))));
  if (!health.ok()) return Fail("health", health);

  npc::ClientOptions client_options;
  client_options.api_key = key;
  client_options.chat_timeout = timeout;
  client_options.unary_timeout = std::chrono::milliseconds(60000);
  npc::v1::Persona persona;
  persona.set_name("Brakka");
  persona.set_description("A gruff dwarven blacksmith who runs the forge in Emberfall.");
  npc::v1::Session session;
  std::string session_id;
  {
    npc::NpcClient client(server.address(), client_options);
    grpc::Status status = client.CreateSession(persona, &session);
    if (!status.ok()) return Fail("CreateSession", status);
    session_id = session.session_id();
    Print("session", Field("session_id", Json(session_id)));

    const std::string first = "Keep my sword safe until I come back.";
    Turn turn = Say(client, session_id, first, max_tokens, -1);
    if (!turn.status.ok()) return Fail("first turn", turn.status);
    PrintTurn(1, first, turn);

    if (hold) {
      Print("holding", Join({Field("pid", server.pid()), Field("address", Json(server.address()))}));
      for (;;) std::this_thread::sleep_for(std::chrono::seconds(60));  // the test kills this process
    }

    // A long reply, killed at its first delta: the crash a game sees mid-conversation.
    const std::string story = "Tell me the whole story of your forge, from the very beginning.";
    const uint64_t generation = server.generation();
    const long pid = server.pid();
    std::atomic<bool> killed{false};
    Turn cut = Say(client, session_id, story, 200, 0, [&](const std::string&) {
      if (killed.exchange(true)) return;
      Print("killing", Join({Field("pid", pid), Field("signal", 9)}));
      KillHard(pid);
    });
    Print("turn_failed", Join({Field("n", 2), Field("status", Json(npc::StatusCodeName(cut.status.error_code()))),
                               Field("message", Json(cut.status.error_message())),
                               Field("deltas", cut.result.deltas), Field("partial", Json(cut.result.streamed_text))}));
    if (!killed) return Fail("the long reply sent no delta before it ended");
    if (cut.status.ok()) return Fail("the long reply finished before the kill landed");

    const auto down = std::chrono::steady_clock::now();
    if (!server.WaitForGeneration(generation + 1, timeout)) return Fail("the server did not come back");
    const auto back_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - down).count();
    Print("back", Join({Field("generation", static_cast<long long>(server.generation())),
                        Field("address", Json(server.address())), Field("pid", server.pid()),
                        Field("ms", static_cast<long long>(back_ms))}));
  }

  // The restarted server has a new port: a new client for it, the same key, the same session id.
  npc::NpcClient client(server.address(), client_options);
  grpc::Status status = client.GetSession(session_id, &session);
  if (!status.ok()) return Fail("GetSession after the restart", status);
  Print("history", Join({Field("after", Json("restart")), Field("turns", History(session))}));
  const bool kept = session.turns_size() == 1 && session.turns(0).user() == "Keep my sword safe until I come back.";

  const std::string third = "Do you still have my sword?";
  Turn turn = Say(client, session_id, third, max_tokens, -1);
  if (!turn.status.ok()) return Fail("turn after the restart", turn.status);
  PrintTurn(3, third, turn);
  status = client.GetSession(session_id, &session);
  if (!status.ok()) return Fail("GetSession", status);
  Print("history", Join({Field("after", Json("third turn")), Field("turns", History(session))}));
  const bool carried = session.turns_size() == 2 && session.turns(1).user() == third;

  const long last_pid = server.pid();
  const npc::StopResult stopped = server.Stop();
  Print("stop_result", Join({Field("how", Json(stopped.how)), Field("exit_code", stopped.exit_code),
                         Field("signal", stopped.signal)}));
  const bool alive = Alive(first_pid) || Alive(last_pid);
  Print("gone", Join({"\"pids\":[" + std::to_string(first_pid) + "," + std::to_string(last_pid) + "]",
                      FieldBool("alive", alive)}));
  if (!kept) return Fail("after the restart the session does not hold exactly its first turn");
  if (!carried) return Fail("the session did not take a new turn after the restart");
  if (alive) return Fail("a server process is still running after Stop()");
  Print("result", Join({FieldBool("ok", true), Field("why", Json(""))}));
  return 0;
}
