// Compile-time stand-in for the UnityEngine, UnityEngine.Events, TMPro and Cysharp.Net.Http members the Unity sample
// touches, so that mono's mcs can build it (tests/clients/test_csharp_samples.py). Signatures follow Unity 2021.3+
// (UnityEngine.CoreModule, TextMeshPro, YetAnotherHttpHandler 1.x). Nothing here does anything: it is not Unity.
using System;
using System.Collections;
using System.Net.Http;

namespace UnityEngine
{
    public class Object
    {
        public string name { get; set; }
        public static void Destroy(Object obj) { }
        public static T[] FindObjectsOfType<T>() where T : Object { return new T[0]; }
        public static implicit operator bool(Object exists) { return !ReferenceEquals(exists, null); }
    }

    public class Component : Object
    {
        public Transform transform { get { return null; } }
        public GameObject gameObject { get { return null; } }
        public string tag { get; set; }
        public bool CompareTag(string tag) { return false; }
        public T GetComponent<T>() { return default(T); }
        public T[] GetComponentsInChildren<T>() { return new T[0]; }
        public T GetComponentInParent<T>() { return default(T); }
    }

    public class Behaviour : Component
    {
        public bool enabled { get; set; }
        public bool isActiveAndEnabled { get { return true; } }
    }

    public class MonoBehaviour : Behaviour
    {
        public Coroutine StartCoroutine(IEnumerator routine) { return null; }
        public void StopAllCoroutines() { }
        public void StopCoroutine(Coroutine routine) { }
    }

    public sealed class GameObject : Object
    {
        public Transform transform { get { return null; } }
        public bool activeInHierarchy { get { return true; } }
        public T GetComponent<T>() { return default(T); }
    }

    public class Transform : Component
    {
        public Vector3 position { get; set; }
        public Vector3 forward { get { return default(Vector3); } }
        public Transform parent { get; set; }
        public bool IsChildOf(Transform parent) { return false; }
    }

    public sealed class Coroutine { }

    public class YieldInstruction { }

    public sealed class WaitForEndOfFrame : YieldInstruction { }

    public sealed class WaitForSeconds : YieldInstruction
    {
        public WaitForSeconds(float seconds) { }
    }

    public struct Vector2
    {
        public float x, y;
        public Vector2(float x, float y) { this.x = x; this.y = y; }
    }

    public struct Vector3
    {
        public float x, y, z;
        public Vector3(float x, float y, float z) { this.x = x; this.y = y; this.z = z; }
        public static float Distance(Vector3 a, Vector3 b) { return 0f; }
        public static Vector3 operator -(Vector3 a, Vector3 b) { return new Vector3(a.x - b.x, a.y - b.y, a.z - b.z); }
        public static Vector3 operator +(Vector3 a, Vector3 b) { return new Vector3(a.x + b.x, a.y + b.y, a.z + b.z); }
        public static Vector3 Scale(Vector3 a, Vector3 b) { return new Vector3(a.x * b.x, a.y * b.y, a.z * b.z); }
        public float magnitude { get { return 0f; } }
    }

    public struct Rect
    {
        public Rect(float x, float y, float width, float height) { this.x = x; this.y = y; this.width = width; this.height = height; }
        public float x, y, width, height;
        public float xMin { get { return x; } }
        public float yMin { get { return y; } }
        public float xMax { get { return x + width; } }
        public float yMax { get { return y + height; } }
        public Vector2 center { get { return new Vector2(x + width / 2, y + height / 2); } }
        public static Rect zero { get { return new Rect(0, 0, 0, 0); } }
        public static Rect MinMaxRect(float xmin, float ymin, float xmax, float ymax) { return new Rect(xmin, ymin, xmax - xmin, ymax - ymin); }
    }

    public struct Bounds
    {
        public Vector3 center { get; set; }
        public Vector3 min { get; set; }
        public Vector3 max { get; set; }
        public Vector3 extents { get; set; }
        public void Encapsulate(Bounds bounds) { }
    }

    public struct Color32
    {
        public byte r, g, b, a;
    }

    public enum KeyCode { None = 0, Return = 13, Escape = 27, F9 = 290, F10 = 291 }

    public enum TextureFormat { RGBA32 = 4, RGB24 = 3 }

    public enum RenderTextureFormat { ARGB32 = 0 }

    public enum RenderTextureReadWrite { Default = 0, Linear = 1, sRGB = 2 }

    public class Texture : Object
    {
        public int width { get { return 0; } }
        public int height { get { return 0; } }
    }

    public sealed class Texture2D : Texture
    {
        public Texture2D(int width, int height, TextureFormat textureFormat, bool mipChain) { }
        public void ReadPixels(Rect source, int destX, int destY, bool recalculateMipMaps) { }
        public void ReadPixels(Rect source, int destX, int destY) { }
        public byte[] EncodeToPNG() { return new byte[0]; }
        public byte[] GetRawTextureData() { return new byte[0]; }
        public void Apply() { }
    }

    public enum FilterMode { Point = 0, Bilinear = 1, Trilinear = 2 }

    public sealed class RenderTexture : Texture
    {
        public FilterMode filterMode { get; set; }
        public static RenderTexture active { get; set; }

        public static RenderTexture GetTemporary(
            int width, int height, int depthBuffer, RenderTextureFormat format, RenderTextureReadWrite readWrite)
        {
            return null;
        }

        public static void ReleaseTemporary(RenderTexture temp) { }
    }

    public static class Graphics
    {
        public static void Blit(Texture source, RenderTexture dest) { }
        public static void Blit(Texture source, RenderTexture dest, Vector2 scale, Vector2 offset) { }
    }

    public static class ScreenCapture
    {
        public static void CaptureScreenshotIntoRenderTexture(RenderTexture renderTexture) { }
        public static Texture2D CaptureScreenshotAsTexture() { return null; }
    }

    public static class Screen
    {
        public static int width { get { return 0; } }
        public static int height { get { return 0; } }
    }

    public static class Input
    {
        public static bool GetKeyDown(KeyCode key) { return false; }
    }

    public static class Time
    {
        public static float time { get { return 0f; } }
        public static float deltaTime { get { return 0f; } }
    }

    public static class Mathf
    {
        public static int Min(int a, int b) { return Math.Min(a, b); }
        public static float Min(float a, float b) { return Math.Min(a, b); }
        public static int Max(int a, int b) { return Math.Max(a, b); }
        public static float Max(float a, float b) { return Math.Max(a, b); }
        public static float Clamp01(float value) { return Math.Max(0f, Math.Min(1f, value)); }
        public static int RoundToInt(float f) { return (int)Math.Round(f); }
    }

    public static class Application
    {
        public static event Action quitting;
        public static string persistentDataPath { get { return ""; } }
        public static string streamingAssetsPath { get { return ""; } }
        internal static void Quit() { if (quitting != null) quitting(); }
    }

    public static class Debug
    {
        public static void Log(object message) { }
        public static void Log(object message, Object context) { }
        public static void LogWarning(object message) { }
        public static void LogWarning(object message, Object context) { }
        public static void LogError(object message) { }
        public static void LogError(object message, Object context) { }
        public static void LogException(Exception exception) { }
        public static void LogException(Exception exception, Object context) { }
    }

    public static class JsonUtility
    {
        public static T FromJson<T>(string json) { return default(T); }
        public static string ToJson(object obj) { return ""; }
    }

    public class Camera : Behaviour
    {
        public static Camera main { get { return null; } }
        public Vector3 WorldToScreenPoint(Vector3 position) { return default(Vector3); }
        public int pixelWidth { get { return 0; } }
        public int pixelHeight { get { return 0; } }
    }

    public class Renderer : Component
    {
        public Bounds bounds { get { return default(Bounds); } }
        public bool isVisible { get { return false; } }
        public bool enabled { get; set; }
    }

    public class Collider : Component { }

    public class Collider2D : Behaviour { }

    public class Animator : Behaviour
    {
        public void SetTrigger(string name) { }
    }

    [AttributeUsage(AttributeTargets.Field, AllowMultiple = true)]
    public sealed class HeaderAttribute : Attribute
    {
        public HeaderAttribute(string header) { }
    }

    [AttributeUsage(AttributeTargets.Field | AttributeTargets.Property)]
    public sealed class TooltipAttribute : Attribute
    {
        public TooltipAttribute(string tooltip) { }
    }

    [AttributeUsage(AttributeTargets.Field)]
    public sealed class RangeAttribute : Attribute
    {
        public RangeAttribute(float min, float max) { }
    }

    [AttributeUsage(AttributeTargets.Field)]
    public sealed class SerializeField : Attribute { }

    [AttributeUsage(AttributeTargets.Field)]
    public sealed class TextAreaAttribute : Attribute
    {
        public TextAreaAttribute(int minLines, int maxLines) { }
    }

    public enum RuntimeInitializeLoadType { AfterSceneLoad = 0, BeforeSceneLoad = 1, SubsystemRegistration = 4 }

    [AttributeUsage(AttributeTargets.Method)]
    public sealed class RuntimeInitializeOnLoadMethodAttribute : Attribute
    {
        public RuntimeInitializeOnLoadMethodAttribute(RuntimeInitializeLoadType loadType) { }
    }

    public static class SystemInfo
    {
        public static bool graphicsUVStartsAtTop { get { return false; } }
    }

    [AttributeUsage(AttributeTargets.Class)]
    public sealed class DisallowMultipleComponent : Attribute { }

    [AttributeUsage(AttributeTargets.Class, AllowMultiple = true)]
    public sealed class RequireComponent : Attribute
    {
        public RequireComponent(Type requiredComponent) { }
    }

    [AttributeUsage(AttributeTargets.Class, AllowMultiple = true)]
    public sealed class AddComponentMenu : Attribute
    {
        public AddComponentMenu(string menuName) { }
    }
}

namespace UnityEngine.Events
{
    public abstract class UnityEventBase { }

    [Serializable]
    public class UnityEvent : UnityEventBase
    {
        public void Invoke() { }
        public void AddListener(Action call) { }
    }

    [Serializable]
    public abstract class UnityEvent<T0> : UnityEventBase
    {
        public void Invoke(T0 arg0) { }
        public void AddListener(Action<T0> call) { }
    }

    [Serializable]
    public abstract class UnityEvent<T0, T1> : UnityEventBase
    {
        public void Invoke(T0 arg0, T1 arg1) { }
        public void AddListener(Action<T0, T1> call) { }
    }
}

namespace TMPro
{
    public abstract class TMP_Text : UnityEngine.MonoBehaviour
    {
        public virtual string text { get; set; }
    }
}

namespace Cysharp.Net.Http
{
    public class YetAnotherHttpHandler : HttpMessageHandler
    {
        public bool Http2Only { get; set; }
        public bool SkipCertificateVerification { get; set; }

        protected override System.Threading.Tasks.Task<HttpResponseMessage> SendAsync(
            HttpRequestMessage request, System.Threading.CancellationToken cancellationToken)
        {
            throw new NotSupportedException("compile-time stand-in");
        }
    }
}
