#include "npc_server_process.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <random>

#include <grpcpp/generic/generic_stub.h>

#include "npc_client.h"

#ifdef _WIN32
#ifndef NOMINMAX
#define NOMINMAX
#endif
#include <windows.h>

#include <cwchar>
#else
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
extern char** environ;
#endif

namespace npc {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr char kApiKeyEnv[] = "NPC_SDK_API_KEY";
constexpr size_t kTailLines = 20;             // the child's last lines, kept for a failed start's error
constexpr size_t kMaxLine = 1 << 20;          // a longer line without an end is passed on in pieces
constexpr milliseconds kPoll{100};            // how often the supervisor looks at its child
constexpr milliseconds kReaderDrain{2000};    // after the child ended: how long its output may still come

}  // namespace

struct ServerProcess::Child {
  long pid = -1;
#ifdef _WIN32
  HANDLE process = nullptr;
  HANDLE out = nullptr;  // read end of the child's stdout + stderr
#else
  int out = -1;
#endif
  std::thread reader;
  std::atomic<bool> abandon{false};  // the reader stops at the next quiet moment instead of at the end of output
  Clock::time_point started;
  std::shared_ptr<grpc::Channel> channel;  // to 127.0.0.1:port, made at the ready line

  // Only the thread that owns the child (Start, then the supervisor, then Stop) touches these:
  bool reaped = false;
  int exit_code = -1;
  int signal = 0;

  // Under ServerProcess::mu_:
  bool ready = false;
  bool eof = false;
  int port = 0;
  long server_pid = 0;  // the pid in the ready line (a bundle's launcher stub may start the server as its child)
  uint64_t generation = 0;
  std::deque<std::string> tail;
};

namespace {

using Child = ServerProcess::Child;

long OwnPid() {
#ifdef _WIN32
  return static_cast<long>(GetCurrentProcessId());
#else
  return static_cast<long>(getpid());
#endif
}

std::string Describe(const Child& child) {
  if (child.signal != 0) return "ended by signal " + std::to_string(child.signal);
  if (child.exit_code >= 0) return "exit status " + std::to_string(child.exit_code);
  return "ended";
}

#ifdef _WIN32

std::wstring Wide(const std::string& utf8) {
  if (utf8.empty()) return std::wstring();
  int n = MultiByteToWideChar(CP_UTF8, 0, utf8.data(), static_cast<int>(utf8.size()), nullptr, 0);
  std::wstring out(static_cast<size_t>(n), L'\0');
  MultiByteToWideChar(CP_UTF8, 0, utf8.data(), static_cast<int>(utf8.size()), &out[0], n);
  return out;
}

std::string Utf8(const std::wstring& wide) {
  if (wide.empty()) return std::string();
  int n = WideCharToMultiByte(CP_UTF8, 0, wide.data(), static_cast<int>(wide.size()), nullptr, 0, nullptr, nullptr);
  std::string out(static_cast<size_t>(n), '\0');
  WideCharToMultiByte(CP_UTF8, 0, wide.data(), static_cast<int>(wide.size()), &out[0], n, nullptr, nullptr);
  return out;
}

// One argument as CommandLineToArgvW and the C runtime read it back.
std::wstring QuoteArgument(const std::wstring& arg) {
  if (!arg.empty() && arg.find_first_of(L" \t\n\v\"") == std::wstring::npos) return arg;
  std::wstring out = L"\"";
  for (size_t i = 0;; ++i) {
    size_t backslashes = 0;
    while (i < arg.size() && arg[i] == L'\\') {
      ++i;
      ++backslashes;
    }
    if (i == arg.size()) {
      out.append(backslashes * 2, L'\\');
      break;
    }
    if (arg[i] == L'"') {
      out.append(backslashes * 2 + 1, L'\\');
    } else {
      out.append(backslashes, L'\\');
    }
    out.push_back(arg[i]);
  }
  out.push_back(L'"');
  return out;
}

std::vector<std::string> ParentEnvironment() {
  std::vector<std::string> env;
  wchar_t* block = GetEnvironmentStringsW();
  if (block == nullptr) return env;
  for (const wchar_t* p = block; *p != L'\0'; p += wcslen(p) + 1) env.push_back(Utf8(p));
  FreeEnvironmentStringsW(block);
  return env;
}

bool SpawnChild(const std::vector<std::string>& argv, const std::vector<std::string>& env, Child* child,
                std::string* error) {
  std::wstring command_line;
  for (const std::string& arg : argv) {
    if (!command_line.empty()) command_line += L' ';
    command_line += QuoteArgument(Wide(arg));
  }
  // The environment block: NAME=VALUE\0...\0\0, sorted by name without regard to case, as CreateProcess asks.
  std::vector<std::wstring> entries;
  for (const std::string& entry : env) entries.push_back(Wide(entry));
  std::sort(entries.begin(), entries.end(), [](const std::wstring& a, const std::wstring& b) {
    return _wcsicmp(a.c_str(), b.c_str()) < 0;
  });
  std::wstring block;
  for (const std::wstring& entry : entries) block.append(entry).push_back(L'\0');
  block.push_back(L'\0');

  SECURITY_ATTRIBUTES inherit{sizeof(SECURITY_ATTRIBUTES), nullptr, TRUE};
  HANDLE read_end = nullptr, write_end = nullptr;
  if (!CreatePipe(&read_end, &write_end, &inherit, 0)) {
    *error = "CreatePipe failed: " + std::to_string(GetLastError());
    return false;
  }
  SetHandleInformation(read_end, HANDLE_FLAG_INHERIT, 0);  // only the write end goes to the child
  HANDLE null_in = CreateFileW(L"NUL", GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE, &inherit, OPEN_EXISTING,
                               FILE_ATTRIBUTE_NORMAL, nullptr);
  STARTUPINFOW startup{};
  startup.cb = sizeof(startup);
  startup.dwFlags = STARTF_USESTDHANDLES;
  startup.hStdInput = null_in;
  startup.hStdOutput = write_end;
  startup.hStdError = write_end;
  PROCESS_INFORMATION info{};
  const DWORD flags = CREATE_UNICODE_ENVIRONMENT | CREATE_NO_WINDOW | CREATE_NEW_PROCESS_GROUP;
  const BOOL ok = CreateProcessW(nullptr, &command_line[0], nullptr, nullptr, TRUE, flags, &block[0], nullptr,
                                 &startup, &info);
  const DWORD why = GetLastError();
  CloseHandle(write_end);  // the child holds its copy: the read end sees the end of output when the child ends
  if (null_in != INVALID_HANDLE_VALUE) CloseHandle(null_in);
  if (!ok) {
    CloseHandle(read_end);
    *error = "cannot run " + argv[0] + ": CreateProcess error " + std::to_string(why);
    return false;
  }
  CloseHandle(info.hThread);
  child->pid = static_cast<long>(info.dwProcessId);
  child->process = info.hProcess;
  child->out = read_end;
  return true;
}

// Collects the exit status once the child has ended; false while it runs (block: wait for it).
bool Reap(Child* child, bool block) {
  if (child->reaped) return true;
  if (WaitForSingleObject(child->process, block ? INFINITE : 0) != WAIT_OBJECT_0) return false;
  DWORD code = 0;
  GetExitCodeProcess(child->process, &code);
  child->exit_code = static_cast<int>(code);
  CloseHandle(child->process);
  child->process = nullptr;
  child->reaped = true;
  return true;
}

// Windows has no SIGTERM for a windowless child: only kill is available (false for terminate).
bool SignalChild(Child* child, bool kill) {
  if (child->reaped || !kill) return false;
  return TerminateProcess(child->process, 1) != 0;
}

// Some bytes of output; 0 at the end (the child and every copy of the write end are gone).
long ReadSome(Child* child, char* buffer, size_t size) {
  DWORD n = 0;
  if (!ReadFile(child->out, buffer, static_cast<DWORD>(size), &n, nullptr)) return 0;
  return static_cast<long>(n);
}

void CloseOutput(Child* child) {
  if (child->out != nullptr) CloseHandle(child->out);
  child->out = nullptr;
}

#else  // POSIX

std::vector<std::string> ParentEnvironment() {
  std::vector<std::string> env;
  for (char** p = environ; p != nullptr && *p != nullptr; ++p) env.emplace_back(*p);
  return env;
}

// Both ends close on exec: another child started meanwhile (by this or another thread) inherits neither.
bool MakePipe(int fds[2]) {
#if defined(__linux__)
  return pipe2(fds, O_CLOEXEC) == 0;
#else
  if (pipe(fds) != 0) return false;
  fcntl(fds[0], F_SETFD, FD_CLOEXEC);
  fcntl(fds[1], F_SETFD, FD_CLOEXEC);
  return true;
#endif
}

// PATH lookup in the parent: between fork and exec only async-signal-safe calls (execve) are allowed.
std::string ResolveExecutable(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  const char* path = std::getenv("PATH");
  std::string dirs = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
  size_t start = 0;
  for (;;) {
    const size_t end = dirs.find(':', start);
    std::string dir = dirs.substr(start, end == std::string::npos ? std::string::npos : end - start);
    if (dir.empty()) dir = ".";
    const std::string candidate = dir + "/" + name;
    struct stat st {};
    if (stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) && access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
    if (end == std::string::npos) return std::string();
    start = end + 1;
  }
}

bool SpawnChild(const std::vector<std::string>& argv, const std::vector<std::string>& env, Child* child,
                std::string* error) {
  const std::string path = ResolveExecutable(argv[0]);
  if (path.empty()) {
    *error = "cannot run " + argv[0] + ": not found in PATH";
    return false;
  }
  std::vector<char*> cargv, cenv;
  for (const std::string& arg : argv) cargv.push_back(const_cast<char*>(arg.c_str()));
  cargv.push_back(nullptr);
  for (const std::string& entry : env) cenv.push_back(const_cast<char*>(entry.c_str()));
  cenv.push_back(nullptr);

  int out[2], exec_error[2];
  if (!MakePipe(out)) {
    *error = std::string("pipe: ") + std::strerror(errno);
    return false;
  }
  if (!MakePipe(exec_error)) {
    *error = std::string("pipe: ") + std::strerror(errno);
    close(out[0]);
    close(out[1]);
    return false;
  }
  const pid_t pid = fork();
  if (pid == 0) {
    // The child: async-signal-safe calls only, up to execve.
    dup2(out[1], STDOUT_FILENO);  // dup2's copies stay open across exec; the pipe's own fds close
    dup2(out[1], STDERR_FILENO);
    const int null_in = open("/dev/null", O_RDONLY);
    if (null_in >= 0) dup2(null_in, STDIN_FILENO);  // the server reads nothing; keep it off the game's terminal
    setpgid(0, 0);  // its own process group: Ctrl+C in the game's terminal is for the game to handle
    // A signal mask and ignored signals survive exec: start the server with neither, whatever the game set.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    struct sigaction default_action {};
    default_action.sa_handler = SIG_DFL;
    for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGPIPE, SIGCHLD}) sigaction(sig, &default_action, nullptr);
    execve(path.c_str(), cargv.data(), cenv.data());
    const int why = errno;
    ssize_t ignored = write(exec_error[1], &why, sizeof why);
    (void)ignored;
    _exit(127);
  }
  const int fork_errno = errno;
  close(out[1]);
  close(exec_error[1]);
  if (pid < 0) {
    close(out[0]);
    close(exec_error[0]);
    *error = std::string("fork: ") + std::strerror(fork_errno);
    return false;
  }
  // The end of exec_error without a byte means execve succeeded (close-on-exec closed the child's copy).
  int why = 0;
  ssize_t n;
  do {
    n = read(exec_error[0], &why, sizeof why);
  } while (n < 0 && errno == EINTR);
  close(exec_error[0]);
  if (n == static_cast<ssize_t>(sizeof why)) {
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    close(out[0]);
    *error = "cannot run " + path + ": " + std::strerror(why);
    return false;
  }
  child->pid = static_cast<long>(pid);
  child->out = out[0];
  return true;
}

bool Reap(Child* child, bool block) {
  if (child->reaped) return true;
  int status = 0;
  pid_t done;
  do {
    done = waitpid(static_cast<pid_t>(child->pid), &status, block ? 0 : WNOHANG);
  } while (done < 0 && errno == EINTR);
  if (done == 0) return false;
  if (done == static_cast<pid_t>(child->pid)) {
    if (WIFEXITED(status)) child->exit_code = WEXITSTATUS(status);
    if (WIFSIGNALED(status)) child->signal = WTERMSIG(status);
  }  // else ECHILD: something else in the game reaped it; the status is lost
  child->reaped = true;
  return true;
}

bool SignalChild(Child* child, bool kill_it) {
  if (child->reaped) return false;  // its pid may belong to another process by now
  return kill(static_cast<pid_t>(child->pid), kill_it ? SIGKILL : SIGTERM) == 0;
}

long ReadSome(Child* child, char* buffer, size_t size) {
  for (;;) {
    pollfd p{child->out, POLLIN, 0};
    const int ready = poll(&p, 1, static_cast<int>(kPoll.count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready == 0) {
      if (child->abandon) return 0;
      continue;
    }
    const ssize_t n = read(child->out, buffer, size);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    return n > 0 ? static_cast<long>(n) : 0;
  }
}

void CloseOutput(Child* child) {
  if (child->out >= 0) close(child->out);
  child->out = -1;
}

#endif

// Waits up to `timeout` for the child to end, and reaps it.
bool WaitExit(Child* child, milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    if (Reap(child, false)) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(milliseconds(20));
  }
}

// grpc.health.v1.Health/Check through a generic stub: Debian's grpc++ has no generated health client. The request
// (service "") is an empty message; the response's field 1 is the status, 1 = SERVING.
grpc::Status HealthCheck(const std::shared_ptr<grpc::Channel>& channel, milliseconds timeout) {
  grpc::GenericStub stub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + timeout);
  grpc::CompletionQueue queue;
  grpc::Slice empty(std::string{});
  grpc::ByteBuffer request(&empty, 1);
  auto call = stub.PrepareUnaryCall(&context, "/grpc.health.v1.Health/Check", request, &queue);
  call->StartCall();
  grpc::ByteBuffer response;
  grpc::Status status;
  call->Finish(&response, &status, reinterpret_cast<void*>(1));
  void* tag = nullptr;
  bool ok = false;
  const bool got = queue.Next(&tag, &ok);
  queue.Shutdown();
  void* drained_tag = nullptr;
  bool drained_ok = false;
  while (queue.Next(&drained_tag, &drained_ok)) {
  }
  if (!got || !ok) return grpc::Status(grpc::StatusCode::INTERNAL, "health: the call did not complete");
  if (!status.ok()) return status;
  std::vector<grpc::Slice> slices;
  if (!response.Dump(&slices).ok()) return grpc::Status(grpc::StatusCode::INTERNAL, "health: unreadable response");
  std::string bytes;
  for (const grpc::Slice& slice : slices) bytes.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
  uint64_t serving = 0;  // proto3: an absent field is 0 (UNKNOWN)
  for (size_t i = 0; i < bytes.size();) {
    const unsigned char key = static_cast<unsigned char>(bytes[i++]);
    if (key != 0x08) break;  // anything but field 1 (varint) is not expected
    uint64_t value = 0;
    for (int shift = 0; i < bytes.size() && shift < 64; shift += 7) {
      const unsigned char b = static_cast<unsigned char>(bytes[i++]);
      value |= static_cast<uint64_t>(b & 0x7F) << shift;
      if ((b & 0x80) == 0) break;
    }
    serving = value;
  }
  if (serving != 1) {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "health: NOT_SERVING (status " + std::to_string(serving) + ")");
  }
  return grpc::Status::OK;
}

// The value after `"key"` and its colon, or npos.
size_t ValueOf(const std::string& line, const char* key) {
  const std::string quoted = std::string("\"") + key + "\"";
  size_t i = line.find(quoted);
  if (i == std::string::npos) return std::string::npos;
  i += quoted.size();
  while (i < line.size() && std::isspace(static_cast<unsigned char>(line[i]))) ++i;
  if (i >= line.size() || line[i] != ':') return std::string::npos;
  ++i;
  while (i < line.size() && std::isspace(static_cast<unsigned char>(line[i]))) ++i;
  return i;
}

bool NumberAt(const std::string& line, size_t i, long* out) {
  if (i == std::string::npos || i >= line.size() || !std::isdigit(static_cast<unsigned char>(line[i]))) return false;
  long value = 0;
  for (; i < line.size() && std::isdigit(static_cast<unsigned char>(line[i])); ++i) {
    if (value > 100000000L) return false;
    value = value * 10 + (line[i] - '0');
  }
  *out = value;
  return true;
}

}  // namespace

const char* ServerEventName(ServerEvent::Kind kind) {
  switch (kind) {
    case ServerEvent::Kind::kReady: return "ready";
    case ServerEvent::Kind::kExited: return "exited";
    case ServerEvent::Kind::kRestarting: return "restarting";
    case ServerEvent::Kind::kStartFailed: return "start_failed";
    case ServerEvent::Kind::kUnhealthy: return "unhealthy";
    case ServerEvent::Kind::kStopped: return "stopped";
  }
  return "unknown";
}

std::string MakeApiKey() {
  std::random_device random;
  static const char kHex[] = "0123456789abcdef";
  std::string key;
  for (int i = 0; i < 4; ++i) {
    uint32_t word = static_cast<uint32_t>(random());
    for (int k = 0; k < 8; ++k, word >>= 4) key.push_back(kHex[word & 0xF]);
  }
  return key;
}

bool ParseReadyLine(const std::string& line, int* port, long* pid) {
  size_t start = 0;
  while (start < line.size() && std::isspace(static_cast<unsigned char>(line[start]))) ++start;
  if (start >= line.size() || line[start] != '{') return false;
  const size_t ready = ValueOf(line, "ready");
  if (ready == std::string::npos || line.compare(ready, 4, "true") != 0) return false;
  long value = 0;
  if (!NumberAt(line, ValueOf(line, "port"), &value) || value < 1 || value > 65535) return false;
  *port = static_cast<int>(value);
  if (pid != nullptr) {
    long server_pid = 0;
    *pid = NumberAt(line, ValueOf(line, "pid"), &server_pid) ? server_pid : 0;
  }
  return true;
}

ServerProcess::ServerProcess(ServerProcessOptions options) : options_(std::move(options)) {}

ServerProcess::~ServerProcess() { Stop(); }

bool ServerProcess::Start(std::string* error) {
  std::lock_guard<std::mutex> stop_lock(stop_mu_);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (started_) {
      if (error != nullptr) *error = "already started";
      return false;
    }
  }
  if (options_.command.empty()) {
    if (error != nullptr) *error = "no command to start";
    return false;
  }
  argv_ = options_.command;
  argv_.insert(argv_.end(), {"--port", "0", "--parent-pid", std::to_string(OwnPid())});
  if (!options_.data_dir.empty()) argv_.insert(argv_.end(), {"--data-dir", options_.data_dir});
  if (options_.threads > 0) argv_.insert(argv_.end(), {"--threads", std::to_string(options_.threads)});
  if (options_.niceness > 0) argv_.insert(argv_.end(), {"--nice", std::to_string(options_.niceness)});
  argv_.insert(argv_.end(), options_.extra_args.begin(), options_.extra_args.end());

  const std::string key = MakeApiKey();
  env_.clear();
  for (const std::string& entry : ParentEnvironment()) {
    const std::string name = entry.substr(0, entry.find('=', 1));  // Windows has "=C:=C:\..." entries
    bool replaced = name == kApiKeyEnv;
    for (const auto& extra : options_.environment) replaced = replaced || extra.first == name;
    if (!replaced) env_.push_back(entry);
  }
  for (const auto& extra : options_.environment) env_.push_back(extra.first + "=" + extra.second);
  env_.push_back(std::string(kApiKeyEnv) + "=" + key);
  {
    std::lock_guard<std::mutex> lock(mu_);
    api_key_ = key;
    started_ = true;
    stopping_ = false;
  }
  if (!Launch(error)) {
    std::lock_guard<std::mutex> lock(mu_);
    started_ = false;
    return false;
  }
  supervisor_ = std::thread(&ServerProcess::Supervise, this);
  return true;
}

bool ServerProcess::Launch(std::string* error) {
  auto child = std::make_shared<Child>();
  std::string why;
  if (!SpawnChild(argv_, env_, child.get(), &why)) {
    if (error != nullptr) *error = why;
    return false;
  }
  child->started = Clock::now();
  child->reader = std::thread(&ServerProcess::ReadOutput, this, child.get());
  bool ready = false, stopping = false, eof = false;
  int port = 0;
  {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, options_.ready_timeout, [&] { return child->ready || child->eof || stopping_; });
    ready = child->ready;
    stopping = stopping_;
    eof = child->eof;
    port = child->port;
  }
  if (ready && !stopping) {
    child->channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials());
    ServerEvent event;
    event.kind = ServerEvent::Kind::kReady;
    {
      std::lock_guard<std::mutex> lock(mu_);
      child->generation = ++generation_;
      child_ = child;
      event.generation = child->generation;
    }
    cv_.notify_all();
    event.pid = child->pid;
    event.port = port;
    Emit(event);
    return true;
  }
  if (eof) WaitExit(child.get(), milliseconds(2000));  // it is ending by itself: let its status tell why
  if (!Reap(child.get(), false)) {
    SignalChild(child.get(), true);
    Reap(child.get(), true);
  }
  Finish(child);
  if (stopping) {
    why = "stopped while starting";
  } else if (eof) {
    why = "the server ended before its ready line (" + Describe(*child) + ")";
  } else {
    why = "no ready line within " + std::to_string(options_.ready_timeout.count()) + " ms";
  }
  std::lock_guard<std::mutex> lock(mu_);
  for (const std::string& line : child->tail) why += "\n  " + line;
  if (error != nullptr) *error = why;
  return false;
}

void ServerProcess::ReadOutput(Child* child) {
  std::string pending;
  char buffer[4096];
  for (;;) {
    if (child->abandon) break;
    const long n = ReadSome(child, buffer, sizeof buffer);
    if (n <= 0) break;
    pending.append(buffer, static_cast<size_t>(n));
    size_t end;
    while ((end = pending.find('\n')) != std::string::npos) {
      std::string line = pending.substr(0, end);
      pending.erase(0, end + 1);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      HandleLine(child, line);
    }
    if (pending.size() > kMaxLine) {
      HandleLine(child, pending);
      pending.clear();
    }
  }
  if (!pending.empty()) HandleLine(child, pending);
  std::lock_guard<std::mutex> lock(mu_);
  child->eof = true;
  cv_.notify_all();
}

void ServerProcess::HandleLine(Child* child, const std::string& line) {
  bool ready;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ready = child->ready;
  }
  int port = 0;
  long pid = 0;
  if (!ready && ParseReadyLine(line, &port, &pid)) {  // the first line that is a ready line; later ones are logs
    std::lock_guard<std::mutex> lock(mu_);
    child->port = port;
    child->server_pid = pid;
    child->ready = true;
    cv_.notify_all();
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    child->tail.push_back(line);
    if (child->tail.size() > kTailLines) child->tail.pop_front();
  }
  if (options_.on_log) options_.on_log(line);
}

// After the child ended (or was killed): read what it still wrote, then join the reader and close the pipe.
void ServerProcess::Finish(const std::shared_ptr<Child>& child) {
  {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, kReaderDrain, [&] { return child->eof; });
  }
  child->abandon = true;  // a grandchild may hold the pipe open: stop at its next quiet moment
  if (child->reader.joinable()) child->reader.join();
  CloseOutput(child.get());
}

void ServerProcess::Supervise() {
  milliseconds delay = options_.first_backoff;
  for (;;) {
    std::shared_ptr<Child> child = Current();
    if (!child) return;
    // Watch the running child until it ends, checking its health now and then.
    int failed_checks = 0;
    auto next_check = Clock::now() + options_.health_interval;
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(mu_);
        if (cv_.wait_for(lock, kPoll, [&] { return stopping_; })) return;  // Stop() takes the child from here
      }
      if (Reap(child.get(), false)) break;
      if (options_.health_interval.count() <= 0 || Clock::now() < next_check) continue;
      const grpc::Status health = HealthCheck(child->channel, options_.health_timeout);
      next_check = Clock::now() + options_.health_interval;
      if (health.ok()) {
        failed_checks = 0;
        continue;
      }
      ++failed_checks;
      ServerEvent event;
      event.kind = ServerEvent::Kind::kUnhealthy;
      event.generation = child->generation;
      event.pid = child->pid;
      event.message = std::string(StatusCodeName(health.error_code())) + ": " + health.error_message();
      Emit(event);
      if (options_.unhealthy_after > 0 && failed_checks >= options_.unhealthy_after) {
        SignalChild(child.get(), true);  // reaped at the next look, then restarted as any crash
      }
    }
    Finish(child);
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (child_ == child) child_.reset();
    }
    cv_.notify_all();
    ServerEvent exited;
    exited.kind = ServerEvent::Kind::kExited;
    exited.generation = child->generation;
    exited.pid = child->pid;
    exited.exit_code = child->exit_code;
    exited.signal = child->signal;
    exited.message = Describe(*child);
    Emit(exited);
    if (!options_.restart) return;
    if (Clock::now() - child->started >= options_.healthy_after) delay = options_.first_backoff;
    // Start a new one, backing off while starts fail.
    for (;;) {
      ServerEvent restarting;
      restarting.kind = ServerEvent::Kind::kRestarting;
      restarting.generation = child->generation;
      restarting.delay = delay;
      Emit(restarting);
      {
        std::unique_lock<std::mutex> lock(mu_);
        if (cv_.wait_for(lock, delay, [&] { return stopping_; })) return;
      }
      delay = std::min(delay * 2, options_.max_backoff);
      std::string error;
      if (Launch(&error)) break;
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (stopping_) return;
      }
      ServerEvent failed;
      failed.kind = ServerEvent::Kind::kStartFailed;
      failed.generation = child->generation;
      failed.message = error;
      Emit(failed);
    }
  }
}

StopResult ServerProcess::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (started_) stopping_ = true;  // a Start() still waiting for its ready line gives up
  }
  cv_.notify_all();
  std::lock_guard<std::mutex> stop_lock(stop_mu_);
  StopResult result;
  result.how = "not_running";
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!started_) return result;
    stopping_ = true;
  }
  cv_.notify_all();
  if (supervisor_.joinable()) supervisor_.join();  // from here on this thread alone owns the child
  std::shared_ptr<Child> child = Current();
  std::string key = api_key();
  if (child) {
    if (Reap(child.get(), false)) {
      result.how = "already_exited";
    } else {
      ClientOptions client_options;
      client_options.api_key = key;
      client_options.unary_timeout = milliseconds(10000);
      NpcClient client(child->channel, client_options);
      if (client.Shutdown().ok() && WaitExit(child.get(), options_.shutdown_grace)) {
        result.how = "shutdown_rpc";
      } else if (SignalChild(child.get(), false) && WaitExit(child.get(), options_.terminate_grace)) {
        result.how = "terminate";
      } else if (Reap(child.get(), false)) {
        result.how = "shutdown_rpc";  // it ended just as the grace ran out
      } else {
        SignalChild(child.get(), true);
        Reap(child.get(), true);
        result.how = "kill";
      }
    }
    Finish(child);
    result.exit_code = child->exit_code;
    result.signal = child->signal;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    child_.reset();
    started_ = false;
    stopping_ = false;
  }
  cv_.notify_all();
  if (child) {
    ServerEvent event;
    event.kind = ServerEvent::Kind::kStopped;
    event.generation = child->generation;
    event.pid = child->pid;
    event.exit_code = result.exit_code;
    event.signal = result.signal;
    event.message = result.how;
    Emit(event);
  }
  return result;
}

void ServerProcess::Emit(const ServerEvent& event) const {
  if (options_.on_event) options_.on_event(event);
}

std::shared_ptr<ServerProcess::Child> ServerProcess::Current() const {
  std::lock_guard<std::mutex> lock(mu_);
  return child_;
}

ServerEndpoint ServerProcess::endpoint() const {
  std::lock_guard<std::mutex> lock(mu_);
  ServerEndpoint out;
  out.api_key = api_key_;
  out.generation = generation_;
  if (child_) {
    out.up = true;
    out.address = "127.0.0.1:" + std::to_string(child_->port);
  }
  return out;
}

std::string ServerProcess::address() const { return endpoint().address; }

int ServerProcess::port() const {
  std::lock_guard<std::mutex> lock(mu_);
  return child_ ? child_->port : 0;
}

std::string ServerProcess::api_key() const {
  std::lock_guard<std::mutex> lock(mu_);
  return api_key_;
}

long ServerProcess::pid() const {
  std::lock_guard<std::mutex> lock(mu_);
  return child_ ? child_->pid : -1;
}

uint64_t ServerProcess::generation() const {
  std::lock_guard<std::mutex> lock(mu_);
  return generation_;
}

bool ServerProcess::running() const {
  std::lock_guard<std::mutex> lock(mu_);
  return child_ != nullptr;
}

bool ServerProcess::WaitForGeneration(uint64_t generation, milliseconds timeout) const {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return child_ != nullptr && child_->generation >= generation; });
}

grpc::Status ServerProcess::CheckHealth(milliseconds timeout) const {
  std::shared_ptr<Child> child = Current();
  if (!child) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the server is not running");
  return HealthCheck(child->channel, timeout);
}

}  // namespace npc
