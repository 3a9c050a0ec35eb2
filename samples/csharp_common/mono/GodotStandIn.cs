// Compile-time stand-in for the Godot 4 .NET (GodotSharp 4.2+) members the Godot C# sample touches, so that mono's
// mcs can build it (tests/clients/test_csharp_samples.py). Type names, namespaces and signatures follow GodotSharp;
// nothing here runs a game. The last part is what Godot's C# source generator writes for a node class with
// [Signal] delegates and methods: the nested SignalName/MethodName classes (GodotSharp generates them per class).
using System;
using System.Collections;
using System.Collections.Generic;
using System.Runtime.CompilerServices;

namespace Godot
{
    public enum PropertyHint { None = 0, Range = 1, MultilineText = 18 }

    [AttributeUsage(AttributeTargets.Field | AttributeTargets.Property)]
    public sealed class ExportAttribute : Attribute
    {
        public ExportAttribute(PropertyHint hint = PropertyHint.None, string hintString = "") { }
    }

    [AttributeUsage(AttributeTargets.Field | AttributeTargets.Property, AllowMultiple = true)]
    public sealed class ExportGroupAttribute : Attribute
    {
        public ExportGroupAttribute(string name, string prefix = "") { }
    }

    [AttributeUsage(AttributeTargets.Delegate)]
    public sealed class SignalAttribute : Attribute { }

    public sealed class StringName
    {
        readonly string name;
        public StringName(string name) { this.name = name; }
        public static implicit operator StringName(string from) { return new StringName(from); }
        public static implicit operator string(StringName from) { return from.name; }
        public override string ToString() { return name; }
    }

    public struct Variant
    {
        readonly object value;
        Variant(object value) { this.value = value; }
        public string AsString() { return value == null ? "" : value.ToString(); }
        public float AsSingle() { return value is IConvertible ? Convert.ToSingle(value) : 0f; }
        public int AsInt32() { return value is IConvertible ? Convert.ToInt32(value) : 0; }
        public static implicit operator Variant(string from) { return new Variant(from); }
        public static implicit operator Variant(int from) { return new Variant(from); }
        public static implicit operator Variant(long from) { return new Variant(from); }
        public static implicit operator Variant(float from) { return new Variant(from); }
        public static implicit operator Variant(double from) { return new Variant(from); }
        public static implicit operator Variant(bool from) { return new Variant(from); }
        public static implicit operator Variant(GodotObject from) { return new Variant(from); }
        public static implicit operator Variant(Collections.Dictionary from) { return new Variant(from); }
        public static implicit operator Variant(Collections.Array from) { return new Variant(from); }
    }

    public static class GD
    {
        public static void Print(params object[] what) { }
        public static void PushWarning(params object[] what) { }
        public static void PushError(params object[] what) { }
    }

    public struct Vector2
    {
        public float X, Y;
        public Vector2(float x, float y) { X = x; Y = y; }
        public static Vector2 Zero { get { return new Vector2(0, 0); } }
    }

    public struct Vector3
    {
        public float X, Y, Z;
        public Vector3(float x, float y, float z) { X = x; Y = y; Z = z; }
        public float DistanceTo(Vector3 to) { return 0f; }
    }

    public struct Rect2
    {
        public Rect2(Vector2 position, Vector2 size) { Position = position; Size = size; }
        public Vector2 Position { get; set; }
        public Vector2 Size { get; set; }
        public bool HasPoint(Vector2 point) { return false; }
    }

    public struct Transform2D
    {
        public Vector2 Origin { get; set; }
    }

    public class SignalAwaiter : INotifyCompletion
    {
        public bool IsCompleted { get { return true; } }
        public Variant[] GetResult() { return new Variant[0]; }
        public void OnCompleted(Action continuation) { continuation(); }
        public SignalAwaiter GetAwaiter() { return this; }
    }

    public class GodotObject : IDisposable
    {
        public class SignalName { }

        public class MethodName { }

        public Error EmitSignal(StringName signal, params Variant[] args) { return Error.Ok; }
        public void CallDeferred(StringName method, params Variant[] args) { }
        public SignalAwaiter ToSignal(GodotObject source, StringName signal) { return new SignalAwaiter(); }
        public void Dispose() { }
    }

    public enum Error { Ok = 0, Failed = 1 }

    public class RefCounted : GodotObject { }

    public class Resource : RefCounted { }

    public sealed class RenderingServer : GodotObject
    {
        public static RenderingServer Singleton { get { return null; } }

        public new class SignalName : GodotObject.SignalName
        {
            public static readonly StringName FramePostDraw = "frame_post_draw";
        }
    }

    public class Image : Resource
    {
        public enum Format { Rgb8 = 4, Rgba8 = 5 }

        public enum Interpolation { Nearest = 0, Bilinear = 1, Cubic = 2, Trilinear = 3, Lanczos = 4 }

        public int GetWidth() { return 0; }
        public int GetHeight() { return 0; }
        public Format GetFormat() { return Format.Rgba8; }
        public void Convert(Format format) { }
        public void Resize(int width, int height, Interpolation interpolation = Interpolation.Bilinear) { }
        public byte[] GetData() { return new byte[0]; }
        public byte[] SavePngToBuffer() { return new byte[0]; }
    }

    public class Texture2D : Resource
    {
        public Image GetImage() { return null; }
    }

    public class ViewportTexture : Texture2D { }

    public class SceneTree : GodotObject
    {
        public Collections.Array<Node> GetNodesInGroup(StringName group) { return new Collections.Array<Node>(); }
    }

    public class Node : GodotObject
    {
        public virtual void _EnterTree() { }
        public virtual void _ExitTree() { }
        public virtual void _Ready() { }
        public virtual void _Process(double delta) { }
        public SceneTree GetTree() { return null; }
        public Viewport GetViewport() { return null; }
        public bool IsInGroup(StringName group) { return false; }
        public bool IsAncestorOf(Node node) { return false; }
        public Variant GetMeta(StringName name, Variant @default = default(Variant)) { return @default; }
        public bool HasMeta(StringName name) { return false; }
    }

    public class Viewport : Node
    {
        public Rect2 GetVisibleRect() { return default(Rect2); }
        public Camera3D GetCamera3D() { return null; }
        public ViewportTexture GetTexture() { return null; }
    }

    public class CanvasItem : Node
    {
        public bool IsVisibleInTree() { return true; }
        public Transform2D GetGlobalTransformWithCanvas() { return default(Transform2D); }
    }

    public class Node2D : CanvasItem { }

    public class Control : CanvasItem { }

    public class Label : Control
    {
        public string Text { get; set; }
    }

    public class RichTextLabel : Control
    {
        public string Text { get; set; }
    }

    public class Node3D : Node
    {
        public Vector3 GlobalPosition { get; set; }
        public bool IsVisibleInTree() { return true; }
    }

    public class Camera3D : Node3D
    {
        public bool IsPositionInFrustum(Vector3 worldPoint) { return false; }
        public Vector2 UnprojectPosition(Vector3 worldPoint) { return default(Vector2); }
    }

    public class CollisionObject3D : Node3D { }

    public class Area3D : CollisionObject3D
    {
        public delegate void BodyEnteredEventHandler(Node3D body);

        public delegate void BodyExitedEventHandler(Node3D body);

        public event BodyEnteredEventHandler BodyEntered;
        public event BodyExitedEventHandler BodyExited;

        internal void Touch(Node3D body)
        {
            if (BodyEntered != null) BodyEntered(body);
            if (BodyExited != null) BodyExited(body);
        }
    }

    public class AnimationMixer : Node
    {
        public bool HasAnimation(StringName name) { return false; }
    }

    public class AnimationPlayer : AnimationMixer
    {
        public void Play(StringName name = null, double customBlend = -1, float customSpeed = 1f, bool fromEnd = false) { }
    }
}

namespace Godot.Collections
{
    public sealed class Dictionary : IEnumerable<KeyValuePair<Variant, Variant>>
    {
        readonly List<KeyValuePair<Variant, Variant>> items = new List<KeyValuePair<Variant, Variant>>();
        public void Add(Variant key, Variant value) { items.Add(new KeyValuePair<Variant, Variant>(key, value)); }
        public int Count { get { return items.Count; } }

        public Variant this[Variant key]
        {
            get { return default(Variant); }
            set { items.Add(new KeyValuePair<Variant, Variant>(key, value)); }
        }

        public bool ContainsKey(Variant key) { return false; }
        public IEnumerator<KeyValuePair<Variant, Variant>> GetEnumerator() { return items.GetEnumerator(); }
        IEnumerator IEnumerable.GetEnumerator() { return items.GetEnumerator(); }
    }

    public sealed class Array : IEnumerable<Variant>
    {
        readonly List<Variant> items = new List<Variant>();
        public IEnumerator<Variant> GetEnumerator() { return items.GetEnumerator(); }
        IEnumerator IEnumerable.GetEnumerator() { return items.GetEnumerator(); }
    }

    public sealed class Array<T> : IEnumerable<T>
    {
        readonly List<T> items = new List<T>();
        public int Count { get { return items.Count; } }
        public IEnumerator<T> GetEnumerator() { return items.GetEnumerator(); }
        IEnumerator IEnumerable.GetEnumerator() { return items.GetEnumerator(); }
    }
}
