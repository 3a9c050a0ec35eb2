// npc_server_process_check: runs npc::ServerProcess on any command and prints what it does, for
// tests/clients/test_cpp_launcher.py (stand-in servers made of shell scripts check the ready line, the key, the
// restart backoff and the stop sequence without a model). Not an example: see npc_launch_demo.cpp for that.
//
//   npc_server_process_check [--until-restarts N] [--first-backoff-ms MS] [--max-backoff-ms MS]
//                            [--healthy-after-ms MS] [--ready-timeout-ms MS] [--shutdown-grace-ms MS]
//                            [--terminate-grace-ms MS] [--health-interval-ms MS] [--unhealthy-after N]
//                            [--data-dir DIR] -- COMMAND...
//
// Output, one JSON object per line: {"event":"check","pid":P} first; then each ServerEvent (ready, exited,
// restarting, start_failed, unhealthy, stopped) and each line the child wrote ({"event":"log","line":...}); when the first
// Start() fails, {"event":"start_error","message":...} and exit status 1. After N "restarting" events (0: right
// after the start) it calls Stop() and exits 0.
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>

#include "npc_server_process.h"

#ifdef _WIN32
#include <windows.h>
#else
#include <unistd.h>
#endif

namespace {

std::mutex mu;
std::condition_variable cv;
int restarts = 0;

std::string Json(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7F) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

void Print(const std::string& line) {
  std::lock_guard<std::mutex> lock(mu);
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  npc::ServerProcessOptions options;
  options.health_interval = std::chrono::milliseconds(0);  // off unless asked for: the stand-ins serve nothing
  int until_restarts = 0;
  int i = 1;
  for (; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--") {
      ++i;
      break;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "unknown or incomplete argument %s\n", arg.c_str());
      return 2;
    }
    const std::string value = argv[++i];
    const std::chrono::milliseconds ms(std::atol(value.c_str()));
    if (arg == "--until-restarts") {
      until_restarts = std::atoi(value.c_str());
    } else if (arg == "--first-backoff-ms") {
      options.first_backoff = ms;
    } else if (arg == "--max-backoff-ms") {
      options.max_backoff = ms;
    } else if (arg == "--healthy-after-ms") {
      options.healthy_after = ms;
    } else if (arg == "--ready-timeout-ms") {
      options.ready_timeout = ms;
    } else if (arg == "--shutdown-grace-ms") {
      options.shutdown_grace = ms;
    } else if (arg == "--terminate-grace-ms") {
      options.terminate_grace = ms;
    } else if (arg == "--health-interval-ms") {
      options.health_interval = ms;
      options.health_timeout = std::chrono::milliseconds(1000);
    } else if (arg == "--unhealthy-after") {
      options.unhealthy_after = std::atoi(value.c_str());
    } else if (arg == "--data-dir") {
      options.data_dir = value;
    } else {
      std::fprintf(stderr, "unknown argument %s\n", arg.c_str());
      return 2;
    }
  }
  for (; i < argc; ++i) options.command.push_back(argv[i]);
  options.on_event = [](const npc::ServerEvent& e) {
    Print("{\"event\":" + Json(npc::ServerEventName(e.kind)) + ",\"generation\":" + std::to_string(e.generation) +
          ",\"pid\":" + std::to_string(e.pid) + ",\"port\":" + std::to_string(e.port) +
          ",\"exit_code\":" + std::to_string(e.exit_code) + ",\"signal\":" + std::to_string(e.signal) +
          ",\"delay_ms\":" + std::to_string(e.delay.count()) + ",\"message\":" + Json(e.message) + "}");
    if (e.kind == npc::ServerEvent::Kind::kRestarting) {
      std::lock_guard<std::mutex> lock(mu);
      ++restarts;
      cv.notify_all();
    }
  };
  options.on_log = [](const std::string& line) { Print("{\"event\":\"log\",\"line\":" + Json(line) + "}"); };
#ifdef _WIN32
  const long own_pid = static_cast<long>(GetCurrentProcessId());
#else
  const long own_pid = static_cast<long>(getpid());
#endif
  Print("{\"event\":\"check\",\"pid\":" + std::to_string(own_pid) + "}");

  npc::ServerProcess server(options);
  std::string error;
  if (!server.Start(&error)) {
    Print("{\"event\":\"start_error\",\"message\":" + Json(error) + "}");
    return 1;
  }
  Print("{\"event\":\"started\",\"address\":" + Json(server.address()) + ",\"key\":" + Json(server.api_key()) +
        ",\"pid\":" + std::to_string(server.pid()) + "}");
  {
    std::unique_lock<std::mutex> lock(mu);
    if (!cv.wait_for(lock, std::chrono::seconds(120), [&] { return restarts >= until_restarts; })) {
      lock.unlock();
      Print("{\"event\":\"timeout\"}");
    }
  }
  const npc::StopResult stopped = server.Stop();
  Print("{\"event\":\"stop_result\",\"how\":" + Json(stopped.how) + ",\"exit_code\":" +
        std::to_string(stopped.exit_code) + ",\"signal\":" + std::to_string(stopped.signal) + "}");
  return 0;
}
