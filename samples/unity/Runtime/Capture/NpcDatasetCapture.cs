// npc-sdk: captures training pictures for the NPC's image head while the game runs (docs/training.md, "Bring your
// own pictures"). Every `interval` seconds, or on `key`, it saves the screen as images/NNNN.png in `folder` and
// appends {"file", "tags", "boxes"} for every visible NpcTag to SPLIT.jsonl; dataset.json lists the tags.
// Not run in Unity here (no Unity on the CI machine): `mcs --parse` checks its syntax only.

using System.Collections;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Text;
using System.Text.RegularExpressions;
using UnityEngine;

namespace NpcSdk
{
    [System.Serializable]
    public struct NpcSceneTag
    {
        public string tag;
        public NpcTagKind kind;
    }

    [AddComponentMenu("npc-sdk/NPC Dataset Capture")]
    public sealed class NpcDatasetCapture : MonoBehaviour
    {
        [Tooltip("Dataset folder (empty: Application.persistentDataPath/npc_dataset), for npc-sdk train --data.")]
        public string folder = "";
        [Tooltip("Seconds between pictures; 0: only on the key (or Capture() from a script).")]
        public float interval = 2f;
        [Tooltip("Takes a picture now (legacy Input Manager). None with only the Input System: call Capture().")]
        public KeyCode key = KeyCode.F9;
        [Tooltip("train, val (threshold calibration) or test (what npc-sdk eval measures). Capture test pictures in " +
                 "other places than the training ones: nearby frames of one walk are near copies.")]
        public string split = "train";
        [Tooltip("Camera that projects the boxes (empty: Camera.main).")]
        public Camera captureCamera;
        [Tooltip("Tags true of every picture taken here that no object carries: night (Time), snow (Terrain).")]
        public NpcSceneTag[] sceneTags = new NpcSceneTag[0];
        [Tooltip("Boxes smaller than this many pixels on a side are left out, and so is their tag.")]
        public float minBoxPixels = 8f;
        [Tooltip("Stops when the folder holds this many pictures.")]
        public int maxPictures = 5000;

        [System.Serializable]
        class Line { public string[] tags = new string[0]; }  // JsonUtility reads a JSONL line's tags, skips the rest

        readonly SortedDictionary<string, string> vocabulary = new SortedDictionary<string, string>();
        int next = 1;
        float due;
        bool busy;

        void Start()
        {
            if (string.IsNullOrEmpty(folder)) folder = Path.Combine(Application.persistentDataPath, "npc_dataset");
            Directory.CreateDirectory(Path.Combine(folder, "images"));
            foreach (var png in Directory.GetFiles(Path.Combine(folder, "images"), "*.png"))
            {
                int number;  // go on after the pictures already there
                if (int.TryParse(Path.GetFileNameWithoutExtension(png), out number) && number >= next)
                    next = number + 1;
            }
            // Tags of earlier sessions stay in dataset.json: its own lines (one tag a line, as written below) keep
            // their words and kind; tags only found in the JSONL files are things.
            string meta = Path.Combine(folder, "dataset.json");
            foreach (var text in File.Exists(meta) ? File.ReadAllLines(meta) : new string[0])
            {
                var m = Regex.Match(text, "^\\s*\"([^\"\\\\]+)\": (\\{.*\\}),?$");
                if (m.Success) vocabulary[m.Groups[1].Value] = m.Groups[2].Value;
            }
            foreach (var name in new[] { "train", "val", "test" })
            {
                string path = Path.Combine(folder, name + ".jsonl");
                if (!File.Exists(path)) continue;
                foreach (var text in File.ReadAllLines(path))
                {
                    if (text.Trim().Length == 0) continue;
                    foreach (var tag in JsonUtility.FromJson<Line>(text).tags)
                        if (!vocabulary.ContainsKey(tag)) vocabulary[tag] = "{\"kind\": \"thing\"}";
                }
            }
            due = Time.time + interval;
            Debug.Log("npc-sdk: capturing " + split + " pictures into " + folder, this);
        }

        void Update()
        {
            if ((key != KeyCode.None && Input.GetKeyDown(key)) || (interval > 0f && Time.time >= due)) Capture();
        }

        /// <summary>Saves the frame being drawn (at its end, UI included) with its labels.</summary>
        public void Capture()
        {
            if (!busy && next <= maxPictures) StartCoroutine(CaptureAtEndOfFrame());
        }

        IEnumerator CaptureAtEndOfFrame()
        {
            busy = true;
            yield return new WaitForEndOfFrame();
            Texture2D shot = ScreenCapture.CaptureScreenshotAsTexture();
            string file = next.ToString("0000", CultureInfo.InvariantCulture) + ".png";
            File.WriteAllBytes(Path.Combine(folder, "images", file), shot.EncodeToPNG());
            float sx = shot.width / (float)Screen.width, sy = shot.height / (float)Screen.height;
            Destroy(shot);

            var tags = new List<string>();
            var boxes = new List<string>();
            bool changed = false;
            foreach (var sceneTag in sceneTags)
            {
                if (string.IsNullOrEmpty(sceneTag.tag)) continue;
                if (!tags.Contains(sceneTag.tag)) tags.Add(sceneTag.tag);
                changed |= Remember(sceneTag.tag, sceneTag.kind, null);
            }
            Camera camera = captureCamera != null ? captureCamera : Camera.main;
            foreach (var npcTag in NpcTag.All)
            {
                Rect box;
                float distance;
                if (string.IsNullOrEmpty(npcTag.npcTag)) continue;
                if (!npcTag.TryScreenBox(camera, out box, out distance)) continue;
                if (box.width * sx < minBoxPixels || box.height * sy < minBoxPixels) continue;
                if (!tags.Contains(npcTag.npcTag)) tags.Add(npcTag.npcTag);
                changed |= Remember(npcTag.npcTag, npcTag.kind, npcTag.words);
                boxes.Add(string.Format(CultureInfo.InvariantCulture,
                    "{{\"tag\": {0}, \"box\": [{1:0}, {2:0}, {3:0}, {4:0}]}}",  // pixels, from the top left
                    Json(npcTag.npcTag), box.xMin * sx, box.yMin * sy, box.xMax * sx, box.yMax * sy));
            }
            File.AppendAllText(Path.Combine(folder, split + ".jsonl"), "{\"file\": " + Json(file) +
                ", \"tags\": [" + string.Join(", ", tags.ConvertAll(Json).ToArray()) +
                "], \"boxes\": [" + string.Join(", ", boxes.ToArray()) + "]}\n");
            if (changed || !File.Exists(Path.Combine(folder, "dataset.json"))) WriteDatasetJson();
            next++;
            due = Time.time + interval;
            busy = false;
        }

        // dataset.json: every tag of the JSONL files, one a line; words and kind from the NpcTag (or the scene tag)
        // that was last seen with it. Set words on the NpcTag: the file is rewritten when a tag is new or changed.
        bool Remember(string tag, NpcTagKind kind, string[] words)
        {
            string entry = "{" + (words != null && words.Length > 0
                ? "\"words\": [" + string.Join(", ", System.Array.ConvertAll(words, Json)) + "], " : "") +
                "\"kind\": " + Json(kind.ToString().ToLowerInvariant()) + "}";
            string old;
            if (vocabulary.TryGetValue(tag, out old) && old == entry) return false;
            vocabulary[tag] = entry;
            return true;
        }

        void WriteDatasetJson()
        {
            var lines = new List<string>();
            foreach (var pair in vocabulary) lines.Add("  " + Json(pair.Key) + ": " + pair.Value);
            File.WriteAllText(Path.Combine(folder, "dataset.json"),
                "{\"tags\": {\n" + string.Join(",\n", lines.ToArray()) + "\n}}\n");
        }

        static string Json(string text)
        {
            var json = new StringBuilder("\"");
            foreach (char c in text)
            {
                if (c == '"' || c == '\\') json.Append('\\').Append(c);
                else if (c < ' ') json.AppendFormat("\\u{0:x4}", (int)c);
                else json.Append(c);
            }
            return json.Append('"').ToString();
        }
    }
}
