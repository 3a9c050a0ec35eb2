// Test-only console program for tests/clients/test_csharp_dotnet.py: the samples' NpcServiceClient, unchanged, over
// a real h2c connection (H2cCallInvoker.cs) on the .NET Core runtime, against a running npc-sdk server.
//   dotnet NpcConsoleCheck.dll ADDRESS API_KEY SCREENSHOT.png [scene]   (scene: NpcSceneCheck.cs instead)
// Prints one line per step: SESSION <id>, DELTA <base64 of the UTF-8 text>, DONE <base64>, SEEN <tags>,
// CANCELLED <status>, INVALID <status> <detail>, CONVERSATION <id> <base64 opening line>, CONVERSATION_DONE <base64>,
// CONVERSATION_CANCELLED null, FORGOTTEN <status>, WRONG_KEY <status>; exits 0, or 1 after ERROR <why>.
using System;
using System.IO;
using System.Text;
using System.Threading;
using System.Threading.Tasks;
using Google.Protobuf;
using Grpc.Core;
using Npc.V1;
using NpcSdk;

namespace NpcSdk.Tests
{
    public static class NpcConsoleCheck
    {
        static string B64(string text) { return Convert.ToBase64String(Encoding.UTF8.GetBytes(text)); }

        public static int Main(string[] args)
        {
            try
            {
                Task run = args.Length > 3 && args[3] == "scene"
                    ? NpcSceneCheck.Run(args[0], args[1], args[2]) : Run(args[0], args[1], args[2]);
                run.GetAwaiter().GetResult();
                return 0;
            }
            catch (Exception e)
            {
                Console.WriteLine("ERROR " + e.GetType().Name + ": " + e.Message);
                return 1;
            }
        }

        static async Task Run(string address, string apiKey, string screenshot)
        {
            var client = new NpcServiceClient(new H2cCallInvoker(address), apiKey);
            var persona = new Persona { Name = "Brakka", Description = "A gruff dwarven blacksmith in Emberfall." };
            Session session = await client.CreateSessionAsync(
                new CreateSessionRequest { Persona = persona }, null, CancellationToken.None);
            Console.WriteLine("SESSION " + session.SessionId);

            // a screenshot turn, streamed
            var request = new ChatRequest
            {
                SessionId = session.SessionId,
                Text = "What do you see out there?",
                Screenshot = new Npc.V1.Image
                {
                    Data = ByteString.CopyFrom(File.ReadAllBytes(screenshot)), Encoding = Npc.V1.Image.Types.Encoding.Png
                },
                Generation = new GenerationConfig { MaxTokens = 30 },
            };
            Done done = await client.StreamReplyAsync(
                request, (delta, soFar) => Console.WriteLine("DELTA " + B64(delta)), false, null, CancellationToken.None);
            Console.WriteLine("DONE " + B64(done.Text));
            Console.WriteLine("SEEN " + NpcScene.Describe(done.Seen));

            // a turn cancelled after its first delta
            var cancel = new CancellationTokenSource();
            var longer = new ChatRequest
            {
                SessionId = session.SessionId, Text = "Tell me a long story.", Generation = new GenerationConfig { MaxTokens = 200 },
            };
            try
            {
                await client.StreamReplyAsync(longer, (delta, soFar) => cancel.Cancel(), false, null, cancel.Token);
                Console.WriteLine("ERROR the cancelled turn finished");
            }
            catch (RpcException e)
            {
                Console.WriteLine("CANCELLED " + e.StatusCode);
            }

            // bad input: the status names the field
            var bad = new ChatRequest { SessionId = session.SessionId, Text = "Look!" };
            bad.Scene.Add(new SceneEntity { Tag = "gem", X = 2f });
            try
            {
                await client.StreamReplyAsync(bad, null, false, null, CancellationToken.None);
                Console.WriteLine("ERROR a scene entity at x = 2 was accepted");
            }
            catch (RpcException e)
            {
                Console.WriteLine("INVALID " + e.StatusCode + " " + e.Status.Detail);
            }

            // the samples' conversation: open, a turn, a turn cancelled from its delta callback, forget
            var conversation = new NpcConversation(
                client, () => new CreateSessionRequest { Persona = persona }, false) { MaxTokens = 30 };
            string opening = await conversation.OpeningLineAsync();
            string conversationId = (await conversation.OpenAsync()).SessionId;
            Console.WriteLine("CONVERSATION " + conversationId + " " + B64(opening));
            Done said = await conversation.SendAsync("Good evening.", null, null, null, null, null);
            Console.WriteLine("CONVERSATION_DONE " + (said == null ? "null" : B64(said.Text)));
            conversation.MaxTokens = 200;
            Done cut = await conversation.SendAsync(
                "Tell me a long story.", null, null, null, null, (delta, soFar) => conversation.Cancel());
            Console.WriteLine("CONVERSATION_CANCELLED " + (cut == null ? "null" : B64(cut.Text)));
            await conversation.ForgetAsync();
            try
            {
                await client.GetSessionAsync(new GetSessionRequest { SessionId = conversationId }, null, CancellationToken.None);
                Console.WriteLine("ERROR the forgotten session is still there");
            }
            catch (RpcException e)
            {
                Console.WriteLine("FORGOTTEN " + e.StatusCode);
            }

            // a wrong API key
            var stranger = new NpcServiceClient(new H2cCallInvoker(address), "not-the-key");
            try
            {
                await stranger.CreateSessionAsync(new CreateSessionRequest { Persona = persona }, null, CancellationToken.None);
                Console.WriteLine("ERROR a wrong API key was accepted");
            }
            catch (RpcException e)
            {
                Console.WriteLine("WRONG_KEY " + e.StatusCode);
            }
        }
    }
}
