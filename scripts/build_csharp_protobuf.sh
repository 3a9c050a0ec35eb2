#!/usr/bin/env bash
# Builds a real Google.Protobuf assembly from Debian's protobuf source with mono's mcs, for compiling the C# samples
# (tests/clients/test_csharp_samples.py): NuGet is not reachable here. Prints the assembly's path; idempotent.
#   scripts/build_csharp_protobuf.sh            # -> ${NPC_SDK_CSHARP_DIR:-/var/cache/npc-sdk/csharp}/Google.Protobuf.dll
# Two local work-arounds, both for mcs and mono rather than for protobuf:
#   - mcs loses `using pb = global::Google.Protobuf;` aliases inside nested types: the aliases are spelled out;
#   - mono's mscorlib keeps System.Runtime.CompilerServices.Unsafe internal: samples/csharp_common/mono/
#     ProtobufUnsafe.cs supplies the members the sources call (and Unsafe.As<char, byte> becomes Unsafe.AsBytes).
set -euo pipefail
exec 3>&1 1>&2  # only the path on stdout
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out_dir="${NPC_SDK_CSHARP_DIR:-/var/cache/npc-sdk/csharp}"
dll="$out_dir/Google.Protobuf.dll"
# the patched sources are kept too: the .NET Core test builds its own Google.Protobuf from them against that runtime
kept_src="$out_dir/Google.Protobuf-src"
if [ -f "$dll" ] && [ -d "$kept_src" ]; then
  echo "$dll" >&3
  exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
sources=/etc/apt/sources.list.d/debian.sources
if ! grep -q "deb-src" "$sources" /etc/apt/sources.list 2>/dev/null; then
  $SUDO sed -i 's/^Types: deb$/Types: deb deb-src/' "$sources"
  $SUDO apt-get update -q
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get source -q --download-only protobuf)
tarball="$(ls "$work"/protobuf_*.orig.tar.gz | head -1)"
version="$(basename "$tarball" | sed 's/protobuf_\(.*\)\.orig\.tar\.gz/\1/')"
tar xzf "$tarball" -C "$work" "protobuf-$version/csharp/src/Google.Protobuf"
src="$work/protobuf-$version/csharp/src/Google.Protobuf"
grep -rl "pb::\|pbc::\|pbr::" --include=*.cs "$src" | xargs sed -i \
  's/\bpbc::/global::Google.Protobuf.Collections./g; s/\bpbr::/global::Google.Protobuf.Reflection./g; s/\bpb::/global::Google.Protobuf./g'
sed -i 's/Unsafe\.As<char, byte>(/Unsafe.AsBytes(/' "$src/WritingPrimitives.cs"
cp "$root/samples/csharp_common/mono/ProtobufUnsafe.cs" "$src/"
$SUDO mkdir -p "$out_dir"
mcs -target:library -unsafe -langversion:experimental -nowarn:1591,618,612,436 -nowarn:108,109,114,219,414 \
  -r:System.Numerics.dll -r:System.Core.dll -out:"$work/Google.Protobuf.dll" $(find "$src" -name '*.cs') >/dev/null
$SUDO rm -rf "$kept_src"
$SUDO cp -r "$src" "$kept_src"
$SUDO mv "$work/Google.Protobuf.dll" "$dll"
echo "build_csharp_protobuf.sh: Google.Protobuf $version built with $(mcs --version) -> $dll"
echo "$dll" >&3
