// Only for building Google.Protobuf from Debian's protobuf source with mono's mcs (scripts/build_csharp_protobuf.sh):
// mono's mscorlib keeps System.Runtime.CompilerServices.Unsafe internal, and no NuGet is reachable here. This is
// compiled into that Google.Protobuf assembly (namespace Google.Protobuf, so it is found before the inaccessible
// one) with the members its sources call. Real Unity and Godot projects use the NuGet Google.Protobuf instead.
using System;
using System.Runtime.InteropServices;

namespace Google.Protobuf
{
    internal static unsafe class Unsafe
    {
        public static T ReadUnaligned<T>(ref byte source) where T : struct
        {
            fixed (byte* p = &source)
            {
                return MemoryMarshal.Read<T>(new ReadOnlySpan<byte>(p, Marshal.SizeOf(typeof(T))));
            }
        }

        public static void WriteUnaligned<T>(ref byte destination, T value) where T : struct
        {
            fixed (byte* p = &destination)
            {
                MemoryMarshal.Write(new Span<byte>(p, Marshal.SizeOf(typeof(T))), ref value);
            }
        }

        public static ref byte Add(ref byte source, int offset)
        {
            fixed (byte* p = &source)
            {
                return ref *(p + offset);
            }
        }

        public static ref byte AddByteOffset(ref byte source, IntPtr offset)
        {
            fixed (byte* p = &source)
            {
                return ref *(p + (long)offset);
            }
        }

        public static ref char AddByteOffset(ref char source, IntPtr offset)
        {
            fixed (char* p = &source)
            {
                return ref *(char*)((byte*)p + (long)offset);
            }
        }

        // Unsafe.As<char, byte>: the one reinterpretation the sources make (the build script renames the call)
        public static ref byte AsBytes(ref char source)
        {
            fixed (char* p = &source)
            {
                return ref *(byte*)p;
            }
        }
    }
}
