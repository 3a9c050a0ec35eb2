#!/usr/bin/env bash
# Debian packages that the engine-client tests build and run against the real server:
# the C++ client (CMake + gRPC C++), headless Godot 3 for the GDScript client, and mono's C# compiler for a syntax check.
# Without them those tests skip (with NPC_SDK_REQUIRE_ENGINE_TOOLS=1, as in CI, they fail instead).
set -euo pipefail
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -q
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
  cmake g++ make pkg-config libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc \
  godot3-server mono-mcs
