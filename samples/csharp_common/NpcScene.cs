// npc-sdk scene helpers shared by the Unity and Godot samples (see NpcServiceClient.cs for the syntax rules):
// what the game says is in view (ChatRequest.Scene) and what the NPC saw (Done.Seen).

using System;
using System.Collections.Generic;
using System.Globalization;
using System.Text;
using Npc.V1;

namespace NpcSdk
{
    public static class NpcScene
    {
        /// <summary>The server takes at most this many entities in one ChatRequest.Scene.</summary>
        public const int MaxEntities = 32;

        /// <summary>
        /// Something the game knows is in view: <paramref name="tag"/> is what it is, a word the NPC may say
        /// ("slime", "ferryman"); <paramref name="name"/> an optional proper name ("Old Tom the ferryman").
        /// <paramref name="x"/>, <paramref name="y"/>: its screen position as a share of the screen from the top-left
        /// corner, clamped to [0, 1] (the server refuses anything else, and a thing half off screen is at the edge);
        /// <paramref name="distance"/>: metres from the camera. float.NaN leaves a field unset.
        /// </summary>
        public static SceneEntity Entity(string tag, string name, float x, float y, float distance)
        {
            var entity = new SceneEntity { Tag = tag ?? "", Name = name ?? "" };
            if (!float.IsNaN(x)) entity.X = Clamp01(x);
            if (!float.IsNaN(y)) entity.Y = Clamp01(y);
            if (!float.IsNaN(distance) && !float.IsInfinity(distance)) entity.Distance = Math.Max(0f, distance);
            return entity;
        }

        /// <summary>Done.Seen as one line for a log: "slime 0.93 (screenshot), ferryman 1.00 (game)".</summary>
        public static string Describe(IEnumerable<SeenTag> seen)
        {
            var text = new StringBuilder();
            foreach (var tag in seen)
            {
                if (text.Length > 0) text.Append(", ");
                text.Append(tag.Tag).Append(' ')
                    .Append(tag.Score.ToString("0.00", CultureInfo.InvariantCulture))
                    .Append(" (").Append(tag.Source).Append(')');
            }
            return text.Length > 0 ? text.ToString() : "nothing";
        }

        static float Clamp01(float value)
        {
            return value < 0f ? 0f : value > 1f ? 1f : value;
        }
    }
}
