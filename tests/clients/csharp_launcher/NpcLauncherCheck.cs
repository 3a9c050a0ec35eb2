// Test-only console program for tests/clients/test_csharp_dotnet.py: the Unity sample's NpcServerProcess
// (samples/unity/Runtime/NpcServerProcess.cs, plain .NET), unchanged, on the .NET Core runtime, launching a real
// npc-sdk server: ready line, key, health, a turn, a crash (the server killed), the restart on a new port, the same
// session carried on, the stop through the Shutdown RPC.
//   dotnet NpcLauncherCheck.dll DATA_DIR PROGRAM ARGS...      (e.g. python3 -m npc_sdk.cli serve --model DIR)
// Prints one line per step: EVENT <kind> <generation> <pid> <port> <exit code> <delay ms>, READY <address>,
// KEY <length> <in command line: true|false>, HEALTH <null or the problem>, SESSION <id>, TURN <n> <base64 reply>,
// KILLED <pid>, BACK <generation> <address>, HISTORY <base64 user>... , STOP <how>, GONE <true|false>;
// exits 0, or 1 after ERROR <why>.
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Text;
using System.Threading;
using System.Threading.Tasks;
using Grpc.Core;
using Npc.V1;
using NpcSdk;

namespace NpcSdk.Tests
{
    public static class NpcLauncherCheck
    {
        static readonly object print = new object();

        static void Say(string line)
        {
            lock (print) Console.WriteLine(line);
        }

        static string B64(string text) { return Convert.ToBase64String(Encoding.UTF8.GetBytes(text)); }

        public static int Main(string[] args)
        {
            try
            {
                Run(args).GetAwaiter().GetResult();
                return 0;
            }
            catch (Exception e)
            {
                Say("ERROR " + e.GetType().Name + ": " + e.Message);
                return 1;
            }
        }

        static async Task Run(string[] args)
        {
            var invokers = new Dictionary<string, CallInvoker>();
            var server = new NpcServerProcess
            {
                FileName = args[1],
                DataDir = args[0],
                Threads = 1,
                HealthInterval = TimeSpan.FromSeconds(1),
                HealthTimeout = TimeSpan.FromSeconds(20),
            };
            for (int i = 2; i < args.Length; i++) server.Arguments.Add(args[i]);
            server.Connect = address =>
            {
                lock (invokers)
                {
                    CallInvoker invoker;
                    if (!invokers.TryGetValue(address, out invoker))
                    {
                        invoker = new H2cCallInvoker(address);
                        invokers[address] = invoker;
                    }
                    return invoker;
                }
            };
            server.Log += line => Console.Error.WriteLine("server: " + line);
            server.Changed += e => Say("EVENT " + e.Kind + " " + e.Generation + " " + e.Pid + " " + e.Port + " " +
                                       e.ExitCode + " " + (long)e.Delay.TotalMilliseconds);

            await server.StartAsync(CancellationToken.None);
            Say("READY " + server.Address);
            string cmdline = File.Exists("/proc/" + server.Pid + "/cmdline")
                ? File.ReadAllText("/proc/" + server.Pid + "/cmdline") : "";
            Say("KEY " + server.ApiKey.Length + " " + (cmdline.Contains(server.ApiKey) ? "true" : "false"));
            string problem = await server.CheckHealthAsync(server.Port);
            Say("HEALTH " + (problem ?? "null"));

            var persona = new Persona { Name = "Brakka", Description = "A gruff dwarven blacksmith in Emberfall." };
            var client = new NpcServiceClient(server.Connect(server.Address), server.ApiKey);
            Session session = await client.CreateSessionAsync(
                new CreateSessionRequest { Persona = persona }, null, CancellationToken.None);
            Say("SESSION " + session.SessionId);
            await Turn(client, session.SessionId, 1, "Keep my sword safe until I come back.");

            int generation = server.Generation;
            int pid = server.Pid;
            Process.GetProcessById(pid).Kill();  // the crash
            Say("KILLED " + pid);
            DateTime deadline = DateTime.UtcNow.AddMinutes(10);
            while (server.Generation <= generation || !server.IsRunning)
            {
                if (DateTime.UtcNow > deadline) throw new TimeoutException("the server did not come back");
                await Task.Delay(100);
            }
            Say("BACK " + server.Generation + " " + server.Address);

            client = new NpcServiceClient(server.Connect(server.Address), server.ApiKey);
            await History(client, session.SessionId);
            await Turn(client, session.SessionId, 2, "Do you still have my sword?");
            await History(client, session.SessionId);

            int last = server.Pid;
            Say("STOP " + await server.StopAsync());
            bool alive;
            try
            {
                alive = !Process.GetProcessById(last).HasExited;
            }
            catch (ArgumentException)
            {
                alive = false;  // no such process
            }
            Say("GONE " + (alive ? "false" : "true"));
        }

        static async Task Turn(NpcServiceClient client, string sessionId, int n, string text)
        {
            var request = new ChatRequest
            {
                SessionId = sessionId, Text = text, Generation = new GenerationConfig { MaxTokens = 16 },
            };
            Done done = await client.StreamReplyAsync(request, null, false, null, CancellationToken.None);
            Say("TURN " + n + " " + B64(done.Text));
        }

        static async Task History(NpcServiceClient client, string sessionId)
        {
            Session session = await client.GetSessionAsync(
                new GetSessionRequest { SessionId = sessionId }, null, CancellationToken.None);
            var users = new StringBuilder("HISTORY");
            foreach (Npc.V1.Turn turn in session.Turns) users.Append(' ').Append(B64(turn.User));
            Say(users.ToString());
        }
    }
}
