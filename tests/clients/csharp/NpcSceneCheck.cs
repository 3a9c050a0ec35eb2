// Test-only: the scene samples' flow (samples/unity/Samples~/Bickering, samples/godot/csharp/BickeringNpcs.cs) on
// the shared NpcSceneTalk, unchanged, against a running server, printing what tests/scene_samples.py reads:
//   dotnet NpcConsoleCheck.dll ADDRESS API_KEY SCREENSHOT.png scene
// Two NPCs bicker about the screenshot; after the first line the player cuts in, asking the other one. Then a talk
// cancelled at its first event: TALK_CANCELLED True.
using System;
using System.IO;
using System.Threading;
using System.Threading.Tasks;
using Npc.V1;
using NpcSdk;

namespace NpcSdk.Tests
{
    public static class NpcSceneCheck
    {
        static readonly object Gate = new object();
        static string speaking = "";  // whose line is being printed
        static NpcSceneTalk talk;
        static Task<SceneEvent> answer;

        public static async Task Run(string address, string apiKey, string screenshot)
        {
            // false: the callbacks run on thread-pool threads, so printing takes a lock
            var client = new NpcServiceClient(new H2cCallInvoker(address), apiKey);
            talk = new NpcSceneTalk(client, false) { MaxTokens = 24 };
            Scene scene = await talk.OpenAsync(new[]
            {
                Character("Brakka", "A gruff dwarven blacksmith who runs the forge in Emberfall."),
                Character("Mirela", "The innkeeper of the Sleeping Griffin, who hears every rumour first."),
            });
            Console.WriteLine("scene " + scene.SceneId + ": Brakka and Mirela");
            bool interrupted = await talk.TalkAsync(
                4, "What is that out on the road? You two never agree about it.",
                NpcScreenshot.Encoded(File.ReadAllBytes(screenshot)), OnEvent, CancellationToken.None);
            if (!interrupted) Console.Error.WriteLine("the talk ended before the player cut in");
            if (answer == null || await answer == null) throw new Exception("nobody answered the player");

            // a talk cancelled at its first event: TalkAsync says it was cut short, and the line is not stored
            var cancel = new CancellationTokenSource();
            bool cut = await talk.TalkAsync(2, "", null, (e, soFar) => cancel.Cancel(), cancel.Token);
            Console.WriteLine("TALK_CANCELLED " + cut);
        }

        static CreateSessionRequest Character(string name, string description)
        {
            return new CreateSessionRequest { Persona = new Persona { Name = name, Description = description } };
        }

        static void OnEvent(SceneEvent e, string lineSoFar)
        {
            lock (Gate)
            {
                Print(e);
                if (answer != null || e.Event == null || e.Event.EventCase != ChatEvent.EventOneofCase.Done) return;
                // after the first line the player cuts in, asking the one who has not spoken
                string line = (e.Speaker == "Brakka" ? "Mirela" : "Brakka") + ", what do you make of it?";
                Console.WriteLine("Player: " + line);
                answer = talk.SayAsync(line, null, OnEvent, CancellationToken.None);
            }
        }

        static void Print(SceneEvent e)
        {
            var kind = e.Event != null ? e.Event.EventCase : ChatEvent.EventOneofCase.None;
            if (e.Interrupted)
            {
                EndLine();
                Console.WriteLine("(interrupted)");
            }
            else if (kind == ChatEvent.EventOneofCase.Delta)
            {
                if (speaking != e.Speaker)
                {
                    EndLine();
                    Console.Write(e.Speaker + ": ");
                    speaking = e.Speaker;
                }
                Console.Write(e.Event.Delta.Text);
            }
            else if (kind == ChatEvent.EventOneofCase.Done)
            {
                if (speaking != e.Speaker) Console.Write(e.Speaker + ": " + e.Event.Done.Text);
                speaking = e.Speaker;
                EndLine();
            }
        }

        static void EndLine()
        {
            if (speaking != "") Console.WriteLine();
            speaking = "";
        }
    }
}
