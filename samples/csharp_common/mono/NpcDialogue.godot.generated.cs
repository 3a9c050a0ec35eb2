// What Godot's C# source generator (GodotSharp 4.x, Godot.SourceGenerators) writes beside samples/godot/csharp/
// NpcDialogue.cs: the StringName constants its EmitSignal and CallDeferred calls refer to. Kept by hand here because
// the generator only runs inside a Godot .NET build; tests/clients/test_csharp_samples.py compiles it with the sample.
using Godot;

namespace NpcSdk
{
    public partial class NpcDialogue
    {
        public new class SignalName : Node.SignalName
        {
            public static readonly StringName ReplyFinished = "ReplyFinished";
            public static readonly StringName ActionRequested = "ActionRequested";
            public static readonly StringName EmotionChanged = "EmotionChanged";
        }

        public new class MethodName : Node.MethodName
        {
            public static readonly StringName ShowReply = "ShowReply";
            public static readonly StringName RequestAction = "RequestAction";
        }
    }
}
