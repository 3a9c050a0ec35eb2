// npc-sdk screenshot helpers shared by the Unity and Godot samples (see NpcServiceClient.cs for the syntax rules).

using System;
using Google.Protobuf;

namespace NpcSdk
{
    public static class NpcScreenshot
    {
        /// <summary>The image encoder's canvas (npc_sdk/runtime/images.py: IMAGE_WIDTH, IMAGE_HEIGHT).</summary>
        public const int EncoderWidth = 448;
        public const int EncoderHeight = 256;

        /// <summary>
        /// The size to downscale a width x height frame to before sending it: the largest size that fits the
        /// encoder's 448x256 canvas with the aspect ratio kept, rounded exactly as the server's letterbox rounds
        /// (Math.Round and Python's round both round half to even), so the server's own resize is a no-op and only
        /// the grey bars are added; nothing is cropped. A 1920x1080 RGBA8 frame is 8.3 MB; at 448x252 it is 452 KB.
        /// Frames that already fit are sent as they are (the server scales those up; more pixels would add nothing).
        /// </summary>
        public static void TargetSize(int width, int height, out int targetWidth, out int targetHeight)
        {
            if (width <= 0 || height <= 0)
            {
                throw new ArgumentException("screenshot: size must be positive, got " + width + "x" + height);
            }
            if (width <= EncoderWidth && height <= EncoderHeight)
            {
                targetWidth = width;
                targetHeight = height;
                return;
            }
            double scale = Math.Min((double)EncoderWidth / width, (double)EncoderHeight / height);
            targetWidth = Math.Min(EncoderWidth, Math.Max(1, (int)Math.Round(width * scale)));
            targetHeight = Math.Min(EncoderHeight, Math.Max(1, (int)Math.Round(height * scale)));
        }

        /// <summary>PNG or JPEG bytes (told apart by their signature) as the server's Image message.</summary>
        public static Npc.V1.Image Encoded(byte[] bytes)
        {
            if (bytes == null) throw new ArgumentNullException("bytes");
            bool jpeg = bytes.Length >= 3 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF;
            return new Npc.V1.Image
            {
                Data = ByteString.CopyFrom(bytes),
                Encoding = jpeg ? Npc.V1.Image.Types.Encoding.Jpeg : Npc.V1.Image.Types.Encoding.Png,
            };
        }

        /// <summary>
        /// Raw RGBA8 pixels as the server's Image message. <paramref name="bottomUp"/>: the first row in
        /// <paramref name="rgba"/> is the bottom of the picture (Unity's Texture2D.GetRawTextureData); Godot's
        /// Image.GetData is top row first.
        /// </summary>
        public static Npc.V1.Image Rgba8(byte[] rgba, int width, int height, bool bottomUp)
        {
            if (rgba == null) throw new ArgumentNullException("rgba");
            long expected = (long)width * height * 4;
            if (width <= 0 || height <= 0 || rgba.Length != expected)
            {
                // The server would answer INVALID_ARGUMENT with the same words; failing here names the cause sooner.
                throw new ArgumentException(
                    "screenshot: data is " + rgba.Length + " bytes but " + width + "x" + height + "x4 needs " + expected);
            }
            return new Npc.V1.Image
            {
                Data = ByteString.CopyFrom(rgba),
                Encoding = Npc.V1.Image.Types.Encoding.Rgba8,
                Width = width,
                Height = height,
                BottomUp = bottomUp,
            };
        }
    }
}
