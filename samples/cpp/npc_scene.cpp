// npc_scene: two NPCs bicker about what is on screen, and the player cuts in (a scene: docs/scenes.md).
//
//   build/cpp/npc_scene --address 127.0.0.1:50051 --screenshot npc_sdk/assets/scenes/meadow_slimes.png
//
// A blacksmith and an innkeeper get a session each and share a scene. Converse lets them talk about the screenshot
// for four lines; after the first line the player cuts in with SceneChat, which ends the talk (the line being said
// is dropped, not stored) and is answered by the NPC it names. Each line is printed as it streams, for example:
//   scene 5f0c9a4e1b2d3c4f: Brakka and Mirela
//   Brakka: Slimes on the road again, lass.
//   Player: Mirela, what do you make of it?
//   Mirela: Oh, don't you st
//   (interrupted)
//   Mirela: Three of them, dear, and not one paying for a room.
// Options: --api-key KEY, --max-tokens N (per line, default 24). A failed call: `ERROR <RPC> <STATUS>: <message>` on
// stderr and exit status 1; bad arguments: 2.
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>

#include "npc_client.h"

namespace {

// Prints scene events as `Name: text` lines while they stream. Two threads print (the talk and the player's line),
// so one mutex keeps each line whole.
class Transcript {
 public:
  void Print(const npc::v1::SceneEvent& e) {
    std::lock_guard<std::mutex> lock(mu_);
    if (e.interrupted()) {
      EndLine();
      std::printf("(interrupted)\n");
    } else if (e.event().has_delta()) {
      StartLine(e.speaker());
      std::printf("%s", e.event().delta().text().c_str());
    } else if (e.event().has_done()) {
      if (speaking_ != e.speaker()) {  // a line that came without deltas
        StartLine(e.speaker());
        std::printf("%s", e.event().done().text().c_str());
      }
      EndLine();
    }
    std::fflush(stdout);
  }

  void Player(const std::string& line) {
    std::lock_guard<std::mutex> lock(mu_);
    EndLine();
    std::printf("Player: %s\n", line.c_str());
    std::fflush(stdout);
  }

 private:
  void StartLine(const std::string& speaker) {
    if (speaking_ == speaker) return;
    EndLine();
    std::printf("%s: ", speaker.c_str());
    speaking_ = speaker;
  }

  void EndLine() {
    if (!speaking_.empty()) std::printf("\n");
    speaking_.clear();
  }

  std::mutex mu_;
  std::string speaking_;  // whose line is being printed
};

npc::v1::Persona Persona(const char* name, const char* description) {
  npc::v1::Persona persona;
  persona.set_name(name);
  persona.set_description(description);
  return persona;
}

int Usage(const std::string& why) {
  std::fprintf(stderr, "npc_scene: %s\nusage: npc_scene --screenshot FILE [--address HOST:PORT] [--api-key KEY] "
               "[--max-tokens N]\n", why.c_str());
  return 2;
}

int Fail(const char* rpc, const grpc::Status& status) {
  std::fprintf(stderr, "ERROR %s %s: %s\n", rpc, npc::StatusCodeName(status.error_code()),
               status.error_message().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::string address = "127.0.0.1:50051", screenshot_path;
  npc::ClientOptions client_options;
  npc::SceneOptions options;
  options.generation.set_max_tokens(24);
  for (int i = 1; i < argc; i += 2) {
    const std::string arg = argv[i], value = i + 1 < argc ? argv[i + 1] : "";
    if (i + 1 >= argc) return Usage(arg + " needs a value");
    if (arg == "--address") {
      address = value;
    } else if (arg == "--screenshot") {
      screenshot_path = value;
    } else if (arg == "--api-key") {
      client_options.api_key = value;
    } else if (arg == "--max-tokens") {
      options.generation.set_max_tokens(std::atoi(value.c_str()));
    } else {
      return Usage("bad argument " + arg);
    }
  }
  std::string png;
  if (!npc::ReadFile(screenshot_path, &png)) return Usage("cannot read --screenshot " + screenshot_path);
  const npc::Screenshot shot = npc::Screenshot::Encoded(png);
  npc::NpcClient client(address, client_options);

  // 1. Two NPCs, each an ordinary session, and a scene of both: each hears what the other says.
  npc::v1::Session smith, inn;
  grpc::Status status = client.CreateSession(
      Persona("Brakka", "A gruff dwarven blacksmith who runs the forge in Emberfall."), &smith);
  if (status.ok()) {
    status = client.CreateSession(
        Persona("Mirela", "The innkeeper of the Sleeping Griffin, who hears every rumour first."), &inn);
  }
  if (!status.ok()) return Fail("CreateSession", status);
  npc::v1::Scene scene;
  status = client.CreateScene({smith.session_id(), inn.session_id()}, &scene);
  if (!status.ok()) return Fail("CreateScene", status);
  std::printf("scene %s: Brakka and Mirela\n", scene.scene_id().c_str());

  // 2. They bicker about the screenshot. Converse blocks (a game runs it on a worker thread) and calls back on this
  //    thread for every delta and done, each with its speaker.
  Transcript transcript;
  std::thread player;
  grpc::Status answered;
  bool interrupted = false;
  const auto print = [&](const npc::v1::SceneEvent& e) { transcript.Print(e); };
  status = client.Converse(
      scene.scene_id(), 4, "What is that out on the road? You two never agree about it.", &shot,
      [&](const npc::v1::SceneEvent& e) {
        print(e);
        if (!e.event().has_done() || player.joinable()) return;
        // 3. After the first line the player cuts in and asks the other NPC. SceneChat interrupts the talk (this
        //    Converse then ends with interrupted = true) and the NPC it names answers, streamed on that thread.
        const std::string line =
            std::string(e.session_id() == smith.session_id() ? "Mirela" : "Brakka") + ", what do you make of it?";
        transcript.Player(line);
        player = std::thread(
            [&, line] { answered = client.SceneChat(scene.scene_id(), line, nullptr, print, options); });
      },
      &interrupted, options);
  if (player.joinable()) player.join();
  if (!status.ok()) return Fail("Converse", status);
  if (!answered.ok()) return Fail("SceneChat", answered);
  if (!interrupted) std::fprintf(stderr, "npc_scene: the talk ended before the player cut in\n");
  return 0;
}
