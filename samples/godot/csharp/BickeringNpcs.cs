// npc-sdk Godot 4 (.NET) scene sample: two NPCs bicker about what is on screen, and the player cuts in (a scene of
// several NPCs: docs/scenes.md). Add it to a node, give it a Label for each NPC and run the scene. It needs what
// NpcDialogue.cs needs (README). Every line is also printed as "Name: text".
using System.Threading;
using System.Threading.Tasks;
using Godot;
using Grpc.Core;
using Npc.V1;

namespace NpcSdk
{
    public partial class BickeringNpcs : Node
    {
        [Export] public string ServerAddress = "http://127.0.0.1:50051";

        /// <summary>Brakka's and Mirela's lines show here as they stream.</summary>
        [Export] public Label SmithLabel;
        [Export] public Label InnkeeperLabel;

        /// <summary>What both hear first (the narrator's line), with a screenshot of the first frame.</summary>
        [Export] public string Topic = "What is that out on the road? You two never agree about it.";

        /// <summary>Lines they would say among themselves if nobody cut in.</summary>
        [Export(PropertyHint.Range, "1,16")] public int Turns = 4;

        NpcSceneTalk talk;
        bool cutIn;

        public override async void _Ready()
        {
            await ToSignal(RenderingServer.Singleton, RenderingServer.SignalName.FramePostDraw);
            Godot.Image frame = GetViewport().GetTexture().GetImage();
            int width, height;
            NpcScreenshot.TargetSize(frame.GetWidth(), frame.GetHeight(), out width, out height);
            frame.Resize(width, height, Godot.Image.Interpolation.Trilinear);  // the encoder sees 448x256 at most
            Npc.V1.Image screenshot = NpcScreenshot.Encoded(frame.SavePngToBuffer());
            try
            {
                // true: every callback runs on the main thread (Godot's SynchronizationContext): labels may be set
                talk = new NpcSceneTalk(new NpcServiceClient(NpcDialogue.ChannelFor(ServerAddress), ""), true);
                await talk.OpenAsync(new[]
                {
                    Character("Brakka", "A gruff dwarven blacksmith who runs the forge in Emberfall."),
                    Character("Mirela", "The innkeeper of the Sleeping Griffin, who hears every rumour first."),
                });
                bool interrupted = await talk.TalkAsync(Turns, Topic, screenshot, OnEvent, CancellationToken.None);
                GD.Print(interrupted ? "(interrupted)" : "(they ran out of words)");
            }
            catch (RpcException e)
            {
                GD.PushWarning("npc-sdk: " + e.StatusCode + ": " + e.Status.Detail);
            }
        }

        static CreateSessionRequest Character(string name, string description)
        {
            return new CreateSessionRequest { Persona = new Persona { Name = name, Description = description } };
        }

        // Every event of the talk and of the answer, each with its speaker and that NPC's line so far.
        void OnEvent(SceneEvent e, string lineSoFar)
        {
            if (e.Event == null) return;  // the interrupted marker: TalkAsync returns true
            Label label = e.Speaker == "Brakka" ? SmithLabel : InnkeeperLabel;
            if (label != null) label.Text = lineSoFar;
            if (e.Event.EventCase != ChatEvent.EventOneofCase.Done) return;
            GD.Print(e.Speaker + ": " + lineSoFar);
            if (cutIn) return;
            // After the first line the player cuts in and asks the other one: the talk stops, and that NPC answers.
            cutIn = true;
            var ignored = CutInAsync((e.Speaker == "Brakka" ? "Mirela" : "Brakka") + ", what do you make of it?");
        }

        async Task CutInAsync(string line)
        {
            GD.Print("Player: " + line);
            try
            {
                await talk.SayAsync(line, null, OnEvent, CancellationToken.None);
            }
            catch (RpcException e)
            {
                GD.PushWarning("npc-sdk: " + e.StatusCode + ": " + e.Status.Detail);
            }
        }
    }
}
