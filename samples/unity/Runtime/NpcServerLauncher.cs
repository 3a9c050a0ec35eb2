// npc-sdk Unity sample: the server as the game's own child process. NpcServerProcess.cs does the work (start, ready
// line, health, restart with backoff, stop) in plain .NET; this MonoBehaviour adds what is Unity's: the bundle in
// StreamingAssets, the save folder in the persistent data path, the main thread, and the stop on OnApplicationQuit.

using System;
using System.IO;
using System.Threading;
using System.Threading.Tasks;
using UnityEngine;

namespace NpcSdk
{
    /// <summary>
    /// Put one in the first scene. On Awake it starts the server bundle from StreamingAssets (made by
    /// <c>npc-sdk bundle --out Assets/StreamingAssets/npc-server</c>) with a fresh API key, waits for its ready line,
    /// restarts it after a crash, and stops it when the game quits. Set it as <see cref="NpcDialogue.server"/> and the
    /// NPCs connect through it, following it to its new address after a restart.
    /// </summary>
    [AddComponentMenu("npc-sdk/NPC Server Launcher")]
    [DisallowMultipleComponent]
    public sealed class NpcServerLauncher : MonoBehaviour
    {
        [Header("Bundle")]
        [Tooltip("The server's executable, relative to StreamingAssets. On Windows \".exe\" is added to a name " +
                 "without an extension.")]
        public string bundleExecutable = "npc-server/npc-server";

        [Tooltip("Its arguments, before the launcher's own (--port 0 --parent-pid ...). {bundle} is the " +
                 "executable's folder, {streamingAssets} and {persistentData} are Unity's folders.")]
        public string[] bundleArguments = { "serve", "--model", "{bundle}/model", "--personas", "{bundle}/personas" };

        [Header("Fallback")]
        [Tooltip("Started when the bundle's executable is missing (the editor, before a bundle is built): e.g. the " +
                 "python of a virtual environment that has npc-sdk installed. Empty: no fallback.")]
        public string fallbackExecutable = "";

        public string[] fallbackArguments = { "-m", "npc_sdk.cli", "serve" };

        [Header("Server")]
        [Tooltip("Where sessions are stored, relative to Application.persistentDataPath. The same folder across " +
                 "restarts and launches keeps every conversation.")]
        public string dataFolder = "npc-sdk";

        [Tooltip("onnxruntime threads per graph (0: all cores). 1 leaves the other cores to the game.")]
        [Range(0, 16)] public int threads = 1;

        [Tooltip("Lower OS priority for the server (POSIX niceness; on Windows any value above 0 is below normal).")]
        [Range(0, 19)] public int niceness = 10;

        public bool startOnAwake = true;
        public float readyTimeoutSeconds = 120f;

        [Tooltip("When the game quits: how long the server may take to finish the replies in flight after the " +
                 "Shutdown call, before it is killed. The main thread waits that long at most.")]
        public float shutdownGraceSeconds = 5f;

        public bool logServerOutput = true;

        /// <summary>On the main thread, after the first start and after each restart: (address, API key).</summary>
        public event Action<string, string> Ready;

        NpcServerProcess process;
        SynchronizationContext mainThread;

        /// <summary>The process logic, for more than this component shows (null before StartServer).</summary>
        public NpcServerProcess ServerProcess
        {
            get { return process; }
        }

        /// <summary>"http://127.0.0.1:N" while the server is up, else null.</summary>
        public string Address
        {
            get { return process != null ? process.Address : null; }
        }

        public string ApiKey
        {
            get { return process != null ? process.ApiKey : ""; }
        }

        /// <summary>Goes up with each start: a client made for an older generation talks to a server that is gone.
        /// </summary>
        public int Generation
        {
            get { return process != null ? process.Generation : 0; }
        }

        public bool IsRunning
        {
            get { return process != null && process.IsRunning; }
        }

        void Awake()
        {
            mainThread = SynchronizationContext.Current;
            if (startOnAwake) StartServer();
        }

        /// <summary>Starts the server, unless it runs already. Failures are logged.</summary>
        public void StartServer()
        {
            if (process != null) return;
            process = Configure();
            if (process != null)
            {
                var ignored = StartAsync(process);
            }
        }

        /// <summary>Stops the server: the Shutdown call, then a kill after the grace. Blocks up to the grace.</summary>
        public void StopServer()
        {
            if (process == null) return;
            NpcServerProcess stopping = process;
            process = null;
            string how = stopping.Stop(TimeSpan.FromSeconds(shutdownGraceSeconds + 5f));
            Debug.Log("npc-sdk: server stopped (" + how + ")");
        }

        void OnApplicationQuit()
        {
            StopServer();
        }

        void OnDestroy()
        {
            StopServer();
        }

        NpcServerProcess Configure()
        {
            string streaming = Application.streamingAssetsPath;
            string executable = Path.Combine(streaming, bundleExecutable);
            if (Path.DirectorySeparatorChar == '\\' && Path.GetExtension(executable) == "") executable += ".exe";
            string bundle = Path.GetDirectoryName(executable);
            var server = new NpcServerProcess();
            string[] arguments;
            if (File.Exists(executable))
            {
                server.FileName = executable;
                arguments = bundleArguments;
            }
            else if (!string.IsNullOrEmpty(fallbackExecutable))
            {
                Debug.LogWarning("npc-sdk: no server bundle at " + executable + "; starting " + fallbackExecutable);
                server.FileName = fallbackExecutable;
                arguments = fallbackArguments;
            }
            else
            {
                Debug.LogError("npc-sdk: no server bundle at " + executable + " and no fallback", this);
                return null;
            }
            foreach (string argument in arguments ?? new string[0])
            {
                server.Arguments.Add(argument.Replace("{bundle}", bundle).Replace("{streamingAssets}", streaming)
                    .Replace("{persistentData}", Application.persistentDataPath));
            }
            server.DataDir = Path.Combine(Application.persistentDataPath, dataFolder);
            Directory.CreateDirectory(server.DataDir);
            server.Threads = threads;
            server.Niceness = niceness;
            server.ReadyTimeout = TimeSpan.FromSeconds(readyTimeoutSeconds);
            server.ShutdownGrace = TimeSpan.FromSeconds(shutdownGraceSeconds);
            // The same HTTP/2 channel per address as the NPCs: the Shutdown call and the health checks go over it.
            server.Connect = address => NpcDialogue.ChannelFor(address).CreateCallInvoker();
            if (logServerOutput) server.Log += line => Debug.Log("npc-server: " + line);  // Debug.Log: any thread
            server.Changed += OnChanged;
            return server;
        }

        async Task StartAsync(NpcServerProcess server)
        {
            try
            {
                await server.StartAsync(CancellationToken.None);
            }
            catch (Exception e)
            {
                Debug.LogError("npc-sdk: the server did not start: " + e.Message, this);
                if (process == server) process = null;  // StartServer may try again
            }
        }

        // On a thread-pool thread: log it, and pass a new address to the main thread.
        void OnChanged(NpcServerEvent e)
        {
            if (e.Kind == NpcServerEventKind.Exited || e.Kind == NpcServerEventKind.StartFailed ||
                e.Kind == NpcServerEventKind.Unhealthy)
            {
                Debug.LogWarning(e.ToString());
            }
            else
            {
                Debug.Log(e.ToString());
            }
            if (e.Kind != NpcServerEventKind.Ready) return;
            NpcServerProcess server = process;
            if (server == null) return;
            string address = server.Address, key = server.ApiKey;
            if (mainThread == null)
            {
                RaiseReady(address, key);
                return;
            }
            mainThread.Post(state => RaiseReady(address, key), null);
        }

        void RaiseReady(string address, string key)
        {
            if (this == null) return;  // destroyed meanwhile
            if (Ready != null) Ready(address, key);
        }
    }
}
