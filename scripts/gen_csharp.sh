#!/usr/bin/env bash
# C# for the Unity and Godot samples: protoc's message classes for proto/npc/v1/npc.proto (Npc.cs, namespace
# Npc.V1) plus the hand-written gRPC client and screenshot helpers from samples/csharp_common/, copied side by side
# so that each engine compiles them from inside its own project folder.
#
#   scripts/gen_csharp.sh              # into samples/unity/Runtime/Generated and samples/godot/csharp/Generated
#   scripts/gen_csharp.sh DIR...       # into each DIR instead (e.g. your Godot project's npc/ folder)
#
# Needs only Debian's protoc (protobuf-compiler, see scripts/install_engine_tools.sh): no Grpc.Tools, no dotnet.
# The outputs are not committed (the samples' .gitignore files): run this after every change to the proto.
# Only Npc.cs and the samples/csharp_common/*.cs file names are written in DIR; nothing else there is touched.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if ! command -v protoc >/dev/null 2>&1; then
  echo "gen_csharp.sh: protoc not found: install Debian's protobuf-compiler (scripts/install_engine_tools.sh)" >&2
  exit 1
fi
if [ "$#" -eq 0 ]; then
  set -- "$root/samples/unity/Runtime/Generated" "$root/samples/godot/csharp/Generated"
fi
for out in "$@"; do
  mkdir -p "$out"
  protoc --proto_path="$root/proto" --csharp_out="$out" "$root/proto/npc/v1/npc.proto"
  cp "$root"/samples/csharp_common/*.cs "$out/"
  echo "gen_csharp.sh: wrote $out: Npc.cs ($(protoc --version)) and $(cd "$root/samples/csharp_common" && echo *.cs)"
done
