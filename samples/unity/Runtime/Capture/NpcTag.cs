// npc-sdk: marks a GameObject as something NPCs can see and name. NpcDialogue sends the visible ones as
// ChatRequest.scene; NpcDatasetCapture writes them as the labels of training pictures. Syntax: see NpcDialogue.cs.

using System.Collections.Generic;
using UnityEngine;

namespace NpcSdk
{
    public enum NpcTagKind
    {
        Thing,
        Terrain,
        Time,
    }

    [AddComponentMenu("npc-sdk/NPC Tag")]
    public sealed class NpcTag : MonoBehaviour
    {
        /// <summary>Every enabled NpcTag (so nothing has to search the scene each frame).</summary>
        public static readonly List<NpcTag> All = new List<NpcTag>();

        [Tooltip("What it is, a word the NPC may say: slime, ferryman, gem (1..64 characters).")]
        public string npcTag = "slime";

        [Tooltip("Optional proper name the NPC is told: Old Tom the ferryman.")]
        public string properName = "";

        [Tooltip("Words that count as naming it, written to dataset.json (empty: the tag and its plural).")]
        public string[] words = new string[0];

        [Tooltip("How the NPC's scene note phrases it (dataset.json 'kind').")]
        public NpcTagKind kind = NpcTagKind.Thing;

        void OnEnable()
        {
            All.Add(this);
        }

        void OnDisable()
        {
            All.Remove(this);
        }

        /// <summary>
        /// The bounds of its visible renderers projected by <paramref name="camera"/>: screen pixels with the origin
        /// at the TOP left (datasets and ChatRequest.scene count from the top, Unity's screen space from the bottom),
        /// clipped to the screen, and the distance from the camera in metres. False when no renderer is visible
        /// (Renderer.isVisible: any camera, the editor's Scene view too; occluders count only with baked occlusion
        /// culling), when it is partly behind the camera, or off screen.
        /// </summary>
        public bool TryScreenBox(Camera camera, out Rect box, out float distance)
        {
            box = Rect.zero;
            distance = 0f;
            var bounds = new Bounds();
            bool any = false;
            foreach (var renderer in GetComponentsInChildren<Renderer>())
            {
                if (!renderer.enabled || !renderer.isVisible) continue;
                if (any) bounds.Encapsulate(renderer.bounds);
                else bounds = renderer.bounds;
                any = true;
            }
            if (!any || camera == null) return false;
            float x0 = float.MaxValue, y0 = float.MaxValue, x1 = float.MinValue, y1 = float.MinValue;
            for (int i = 0; i < 8; i++)
            {
                var corner = bounds.center + Vector3.Scale(bounds.extents,
                    new Vector3((i & 1) == 0 ? -1f : 1f, (i & 2) == 0 ? -1f : 1f, (i & 4) == 0 ? -1f : 1f));
                Vector3 p = camera.WorldToScreenPoint(corner);
                if (p.z <= 0f) return false;
                x0 = Mathf.Min(x0, p.x);
                x1 = Mathf.Max(x1, p.x);
                y0 = Mathf.Min(y0, Screen.height - p.y);  // flipped: 0 is the top row
                y1 = Mathf.Max(y1, Screen.height - p.y);
            }
            x0 = Mathf.Max(x0, 0f);
            y0 = Mathf.Max(y0, 0f);
            x1 = Mathf.Min(x1, Screen.width);
            y1 = Mathf.Min(y1, Screen.height);
            if (x1 <= x0 || y1 <= y0) return false;
            box = Rect.MinMaxRect(x0, y0, x1, y1);
            distance = Vector3.Distance(camera.transform.position, bounds.center);
            return true;
        }
    }
}
