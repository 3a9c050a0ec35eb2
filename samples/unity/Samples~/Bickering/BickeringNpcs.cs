// The package sample (Package Manager > npc-sdk NPC Dialogue > Samples > Bickering > Import): two NPCs bicker about
// what is on screen, and the player cuts in (a scene of several NPCs: docs/scenes.md). Put it on any GameObject,
// give it a text for each NPC and press Play. Every line also goes to the console as "Name: text".
using System.Collections;
using System.Threading;
using System.Threading.Tasks;
using Grpc.Core;
using Npc.V1;
using TMPro;
using UnityEngine;

namespace NpcSdk.Samples
{
    public sealed class BickeringNpcs : MonoBehaviour
    {
        [Tooltip("npc-sdk serve address: http:// is HTTP/2 without TLS, the server's default.")]
        public string serverAddress = "http://127.0.0.1:50051";

        [Tooltip("Brakka's line shows here as it streams.")]
        public TMP_Text smithText;

        [Tooltip("Mirela's line shows here as it streams.")]
        public TMP_Text innkeeperText;

        [Tooltip("What both hear first (the narrator's line), with a screenshot of the first frame.")]
        public string topic = "What is that out on the road? You two never agree about it.";

        [Tooltip("Lines they would say among themselves if nobody cut in.")]
        [Range(1, 16)] public int turns = 4;

        NpcSceneTalk talk;
        bool cutIn;

        IEnumerator Start()
        {
            yield return new WaitForEndOfFrame();  // ScreenCapture needs the finished frame
            Texture2D frame = ScreenCapture.CaptureScreenshotAsTexture();
            // Full size as PNG keeps the sample short; NpcDialogue shows the GPU downscale a game should do first.
            Npc.V1.Image screenshot = NpcScreenshot.Encoded(frame.EncodeToPNG());
            Destroy(frame);
            var ignored = BickerAsync(screenshot);
        }

        async Task BickerAsync(Npc.V1.Image screenshot)
        {
            try
            {
                // true: every callback runs on the main thread (Unity's SynchronizationContext), so it may touch the UI
                talk = new NpcSceneTalk(new NpcServiceClient(NpcDialogue.ChannelFor(serverAddress), ""), true);
                await talk.OpenAsync(new[]
                {
                    Character("Brakka", "A gruff dwarven blacksmith who runs the forge in Emberfall."),
                    Character("Mirela", "The innkeeper of the Sleeping Griffin, who hears every rumour first."),
                });
                bool interrupted = await talk.TalkAsync(turns, topic, screenshot, OnEvent, CancellationToken.None);
                Debug.Log(interrupted ? "(interrupted)" : "(they ran out of words)");
            }
            catch (RpcException e)
            {
                Debug.LogWarning("npc-sdk: " + e.StatusCode + ": " + e.Status.Detail, this);
            }
        }

        static CreateSessionRequest Character(string name, string description)
        {
            return new CreateSessionRequest { Persona = new Persona { Name = name, Description = description } };
        }

        // Every event of the talk and of the answer, each with its speaker and that NPC's line so far.
        void OnEvent(SceneEvent e, string lineSoFar)
        {
            if (this == null || e.Event == null) return;  // destroyed while they talked; or the interrupted marker
            TMP_Text bubble = e.Speaker == "Brakka" ? smithText : innkeeperText;
            if (bubble != null) bubble.text = lineSoFar;
            if (e.Event.EventCase != ChatEvent.EventOneofCase.Done) return;
            Debug.Log(e.Speaker + ": " + lineSoFar);
            if (cutIn) return;
            // After the first line the player cuts in and asks the other one: the talk stops, and that NPC answers.
            cutIn = true;
            var ignored = CutInAsync((e.Speaker == "Brakka" ? "Mirela" : "Brakka") + ", what do you make of it?");
        }

        async Task CutInAsync(string line)
        {
            Debug.Log("Player: " + line);
            try
            {
                await talk.SayAsync(line, null, OnEvent, CancellationToken.None);
            }
            catch (RpcException e)
            {
                Debug.LogWarning("npc-sdk: " + e.StatusCode + ": " + e.Status.Detail, this);
            }
        }
    }
}
