// ServerProcess: starts the npc-sdk server as a child of the game and keeps it running (docs/server.md,
// "Launching the server from a game").
//
// It runs `<command> --port 0 --parent-pid <this process> [--data-dir D] [--threads N] [--nice N] <extra args>`
// with a fresh API key in the child's environment (NPC_SDK_API_KEY, never on the command line), reads the child's
// stdout and stderr on a thread until the one JSON ready line `{"ready": true, "port": N, ...}`, and keeps reading
// them afterwards so the pipe never fills (every other line goes to on_log). A supervisor thread then watches the
// child: when it ends without Stop(), or fails `unhealthy_after` health checks in a row, it is started again with the
// same data dir (sessions survive) on a new port, after a backoff of 0.5 s, 1 s, 2 s, ... capped at 8 s (back to
// 0.5 s once a child has run 30 s). Callers see the new address through generation(), WaitForGeneration() or the
// on_event callback (ServerEvent::kReady), and make a new NpcClient for it.
//
// Stop() (the destructor calls it) sends the Shutdown RPC with the key, then SIGTERM after `shutdown_grace`, then
// SIGKILL after `terminate_grace`. If the game dies without stopping it, the server notices through --parent-pid and
// stops by itself.
//
// POSIX (Linux, macOS): fork/exec, with the child in its own process group (Ctrl+C in the game's terminal is the
// game's to handle). The process owns its children's reaping: do not install SIGCHLD = SIG_IGN or a waitpid(-1)
// loop elsewhere in the game. Windows: CreateProcessW with a pipe; there is no SIGTERM there, so a child the Shutdown
// RPC did not stop is terminated (the Windows branch was not compiled or run for this sample).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <grpcpp/grpcpp.h>

namespace npc {

// What the supervisor did; on_event gets one for each.
struct ServerEvent {
  enum class Kind {
    kReady,        // a child printed its ready line and takes calls (generation, pid, port)
    kExited,       // the running child ended without Stop() (exit_code / signal)
    kRestarting,   // the next start comes after `delay`
    kStartFailed,  // a start gave no ready line: exec failed, the child ended, or ready_timeout passed (message)
    kUnhealthy,    // a health check failed (message); after unhealthy_after in a row the child is killed
    kStopped,      // Stop() ended the child (message: "shutdown_rpc", "terminate", "kill" or "already_exited")
  };
  Kind kind = Kind::kReady;
  uint64_t generation = 0;  // which start this child came from: 1 for the first, +1 for each restart
  long pid = 0;             // the child's process id
  int port = 0;             // kReady: its loopback port
  int exit_code = -1;       // kExited, kStopped: the exit status; -1 when a signal ended it
  int signal = 0;           // kExited, kStopped: the signal that ended it (POSIX), else 0
  std::chrono::milliseconds delay{0};  // kRestarting
  std::string message;
};

// "ready", "exited", "restarting", "start_failed", "unhealthy", "stopped".
const char* ServerEventName(ServerEvent::Kind kind);

struct ServerProcessOptions {
  // The program and its arguments: the bundle's executable ({"<game>/npc-server/npc-server", "serve", "--model",
  // "<game>/npc-server/model"}) or, with Python, {"python3", "-m", "npc_sdk.cli", "serve", "--model", "<folder>"}.
  // A name without a slash is looked up in PATH.
  std::vector<std::string> command;
  std::vector<std::string> extra_args;  // after what ServerProcess adds, e.g. {"--personas", "<folder>"}
  std::string data_dir;                 // --data-dir: keep it across restarts so sessions survive ("": default)
  int threads = 0;                      // --threads N, onnxruntime threads per graph (0: not passed, all cores)
  int niceness = 0;                     // --nice N, lower priority (POSIX 1..19; Windows: below normal) (0: not passed)
  std::vector<std::pair<std::string, std::string>> environment;  // added to the child's environment

  std::chrono::milliseconds ready_timeout{120000};  // from the start to the ready line
  bool restart = true;                              // start the server again when it ends without Stop()
  std::chrono::milliseconds first_backoff{500};
  std::chrono::milliseconds max_backoff{8000};
  std::chrono::milliseconds healthy_after{30000};  // a child that ran this long resets the backoff
  std::chrono::milliseconds health_interval{5000};  // grpc.health.v1 checks of the running child (0: none)
  std::chrono::milliseconds health_timeout{5000};
  int unhealthy_after = 3;  // failed checks in a row before the child is killed and restarted (0: only report them)
  std::chrono::milliseconds shutdown_grace{15000};   // Stop(): after the Shutdown RPC, before SIGTERM
  std::chrono::milliseconds terminate_grace{10000};  // Stop(): after SIGTERM, before SIGKILL

  // On the supervisor's thread (kReady of the first start: on Start()'s caller). Do not call Stop() from it.
  std::function<void(const ServerEvent&)> on_event;
  // Every line of the child's stdout and stderr but the ready line, without its line end, on a reader thread.
  std::function<void(const std::string&)> on_log;
};

// The running server's address and key, read together (a restart changes the address).
struct ServerEndpoint {
  bool up = false;        // false while the server is down or restarting: address is then empty
  std::string address;    // "127.0.0.1:N"
  std::string api_key;    // for ClientOptions::api_key
  uint64_t generation = 0;
};

struct StopResult {
  std::string how;    // "shutdown_rpc", "terminate" (SIGTERM), "kill", "already_exited", "not_running"
  int exit_code = -1;  // -1 when a signal ended it or nothing ran
  int signal = 0;
};

class ServerProcess {
 public:
  explicit ServerProcess(ServerProcessOptions options);
  ~ServerProcess();  // Stop()
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  // Starts the server, waits for its ready line (ready_timeout) and starts the supervisor. False, with the reason
  // and the child's last lines in `error`, when it could not: nothing then runs and Start() may be called again.
  bool Start(std::string* error = nullptr);

  // Stops the supervisor and the server (Shutdown RPC, SIGTERM, SIGKILL). Safe to call more than once.
  StopResult Stop();

  ServerEndpoint endpoint() const;
  std::string address() const;  // "127.0.0.1:N", "" while down
  int port() const;             // 0 while down
  std::string api_key() const;  // 32 hex characters, made fresh by each Start()
  long pid() const;             // the running child, -1 while down
  uint64_t generation() const;  // 1 once Start() succeeded, +1 for each restart
  bool running() const;         // a child is up and took calls

  // Waits until a child of at least this generation is up (WaitForGeneration(generation() + 1, ...) after a crash).
  bool WaitForGeneration(uint64_t generation, std::chrono::milliseconds timeout) const;

  // grpc.health.v1.Health/Check of the running server (no key needed): OK when it answers SERVING.
  grpc::Status CheckHealth(std::chrono::milliseconds timeout) const;

  struct Child;  // one started process: its handle, its output pipe and reader thread (npc_server_process.cpp)

 private:
  bool Launch(std::string* error);
  void Supervise();
  void ReadOutput(Child* child);
  void HandleLine(Child* child, const std::string& line);
  void Finish(const std::shared_ptr<Child>& child);
  void Emit(const ServerEvent& event) const;
  std::shared_ptr<Child> Current() const;

  const ServerProcessOptions options_;
  std::vector<std::string> argv_;  // the whole command line, built by Start()
  std::vector<std::string> env_;   // NAME=VALUE for the child, the key included

  std::mutex stop_mu_;  // one Start() or Stop() at a time
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::string api_key_;
  bool started_ = false;
  bool stopping_ = false;
  uint64_t generation_ = 0;
  std::shared_ptr<Child> child_;  // the child that took calls; null while down
  std::thread supervisor_;
};

// A fresh key: 32 hex characters from std::random_device.
std::string MakeApiKey();

// The port (and pid, when given) of a ready line, `{"ready": true, "port": N, "pid": P, ...}`; false for any other
// line. A tiny reader for this one line, not a JSON parser.
bool ParseReadyLine(const std::string& line, int* port, long* pid = nullptr);

}  // namespace npc
