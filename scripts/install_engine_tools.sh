#!/usr/bin/env bash
# Debian packages that the engine-client tests build and run against the real server:
# the C++ client (CMake + gRPC C++), headless Godot 3 and Godot 4 (in a Debian sid chroot, below) for the GDScript
# clients, mono's C# compiler for a syntax check, and headless Chromium with its driver for the studio page's
# browser tests (Selenium drives Debian's chromium-driver; no browser is downloaded).
# Without them those tests skip (with NPC_SDK_REQUIRE_ENGINE_TOOLS=1, as in CI, they fail instead).
set -euo pipefail
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -q
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
  cmake g++ make pkg-config libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc \
  godot3-server mono-mcs chromium chromium-driver fonts-dejavu-core

# Godot 4 for the Godot 4 GDScript client: Debian unstable's `godot` package needs a newer libc than this Debian, so
# it lives in a minimal sid chroot (~50-80 s and ~880 MB once; kept at NPC_SDK_GODOT4_ROOT between runs).
# The tests run `chroot ROOT godot --headless ...` with the project copied inside; the chroot shares the network,
# so the client reaches the server on 127.0.0.1.
GODOT4_ROOT="${NPC_SDK_GODOT4_ROOT:-/var/cache/npc-sdk/godot4-sid}"
if [ ! -x "$GODOT4_ROOT/usr/bin/godot" ]; then
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap
  $SUDO rm -rf "$GODOT4_ROOT.partial"
  $SUDO mkdir -p "$(dirname "$GODOT4_ROOT")"
  $SUDO debootstrap --variant=minbase --include=godot sid "$GODOT4_ROOT.partial" http://deb.debian.org/debian >&2
  $SUDO mv "$GODOT4_ROOT.partial" "$GODOT4_ROOT"
fi
echo "godot 4: $($SUDO chroot "$GODOT4_ROOT" /usr/bin/godot --version 2>/dev/null | tail -1) in $GODOT4_ROOT" >&2

# A real Google.Protobuf for compiling the C# samples fully (not only parsing them): built from Debian's protobuf
# source with mcs (kept at NPC_SDK_CSHARP_DIR between runs); System.Net.Http for the Unity sample's HTTP handler.
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends libmono-system-net-http4.0-cil
echo "google.protobuf: $("$(dirname "$0")/build_csharp_protobuf.sh")" >&2
