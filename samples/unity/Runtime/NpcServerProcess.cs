// npc-sdk: the server as a child process of the game, started, watched and stopped (docs/server.md, "Launching the
// server from a game"). Plain .NET (System.Diagnostics.Process), nothing from UnityEngine: NpcServerLauncher.cs is the
// MonoBehaviour around it, and the same class serves any .NET host. Syntax kept to what mono's mcs parses.

using System;
using System.Collections.Generic;
using System.ComponentModel;
using System.Diagnostics;
using System.IO;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using System.Threading;
using System.Threading.Tasks;
using Grpc.Core;
using Npc.V1;

namespace NpcSdk
{
    /// <summary>What the supervisor did: <see cref="NpcServerProcess.Changed"/> gets one for each.</summary>
    public enum NpcServerEventKind
    {
        Ready,        // a child printed its ready line and takes calls (Generation, Pid, Port)
        Exited,       // the running child ended without Stop (ExitCode)
        Restarting,   // the next start comes after Delay
        StartFailed,  // a start gave no ready line (Message: why, and the child's last lines)
        Unhealthy,    // a health check failed (Message); after UnhealthyAfter in a row the child is killed
        Stopped,      // Stop ended the child (Message: "shutdown_rpc", "kill" or "already_exited")
    }

    public sealed class NpcServerEvent
    {
        public NpcServerEventKind Kind;
        public int Generation;  // which start the child came from: 1 for the first, +1 for each restart
        public int Pid;
        public int Port;
        public int ExitCode = -1;
        public TimeSpan Delay;
        public string Message = "";

        public override string ToString()
        {
            return "npc-sdk server " + Kind + " (generation " + Generation + ", pid " + Pid + ", port " + Port +
                   ", exit code " + ExitCode + ", delay " + Delay.TotalMilliseconds + " ms)" +
                   (string.IsNullOrEmpty(Message) ? "" : ": " + Message);
        }
    }

    /// <summary>
    /// Starts the server (the bundle's executable, or any command) with <c>--port 0 --parent-pid &lt;this process&gt;</c>
    /// and a fresh API key in its environment (NPC_SDK_API_KEY, never on the command line), reads its stdout until the
    /// ready line <c>{"ready": true, "port": N, ...}</c> and keeps reading stdout and stderr (every other line goes to
    /// <see cref="Log"/>). A supervisor then watches it: when it ends without <see cref="StopAsync"/>, or fails
    /// <see cref="UnhealthyAfter"/> health checks in a row, it is started again with the same data dir (sessions
    /// survive) on a new port, after 0.5 s, 1 s, 2 s, ... up to 8 s (back to 0.5 s once a child ran 30 s).
    /// <see cref="Address"/> and <see cref="Generation"/> change with each start: make a new client for the new address.
    /// <see cref="StopAsync"/> sends the Shutdown RPC with the key and kills the child if it has not ended after
    /// <see cref="ShutdownGrace"/>. If the game dies without stopping it, the server stops by itself (--parent-pid).
    /// Events are raised on thread-pool threads.
    /// </summary>
    public sealed class NpcServerProcess : IDisposable
    {
        public const string ApiKeyVariable = "NPC_SDK_API_KEY";

        // ---- what to start (read by StartAsync and by every restart) ----

        /// <summary>The program: the bundle's executable, or e.g. "python3".</summary>
        public string FileName = "";

        /// <summary>Its arguments, before the launcher's own: e.g. "serve", "--model", folder.</summary>
        public readonly List<string> Arguments = new List<string>();

        /// <summary>--data-dir: keep it across restarts and launches so sessions survive ("": the server's default).
        /// </summary>
        public string DataDir = "";

        /// <summary>--threads N, onnxruntime threads per graph (0: not passed, all cores).</summary>
        public int Threads;

        /// <summary>--nice N, a lower OS priority so the game's threads come first (0: not passed).</summary>
        public int Niceness;

        public string WorkingDirectory = "";

        /// <summary>Added to the child's environment.</summary>
        public readonly Dictionary<string, string> Environment = new Dictionary<string, string>();

        public TimeSpan ReadyTimeout = TimeSpan.FromSeconds(120);
        public bool Restart = true;
        public TimeSpan FirstBackoff = TimeSpan.FromMilliseconds(500);
        public TimeSpan MaxBackoff = TimeSpan.FromSeconds(8);
        public TimeSpan HealthyAfter = TimeSpan.FromSeconds(30);

        /// <summary>How often the running child's health is checked (needs <see cref="Connect"/>; zero: never).
        /// </summary>
        public TimeSpan HealthInterval = TimeSpan.FromSeconds(5);
        public TimeSpan HealthTimeout = TimeSpan.FromSeconds(5);

        /// <summary>Failed health checks in a row before the child is killed and restarted (0: only report them).
        /// </summary>
        public int UnhealthyAfter = 3;

        public TimeSpan ShutdownGrace = TimeSpan.FromSeconds(15);

        /// <summary>
        /// A CallInvoker for an address ("http://127.0.0.1:N"), for the Shutdown RPC and the health checks: in Unity,
        /// the channel NpcDialogue uses. Null: no health checks, and StopAsync kills without asking.
        /// </summary>
        public Func<string, CallInvoker> Connect;

        /// <summary>Every line of the child's stdout and stderr but the ready line.</summary>
        public event Action<string> Log;

        public event Action<NpcServerEvent> Changed;

        // ---- state ----

        sealed class Child
        {
            public Process Process;
            public int Pid;
            public int Port;
            public int Generation;
            public DateTime Started;
            public readonly TaskCompletionSource<int> Ready = new TaskCompletionSource<int>();
            public readonly TaskCompletionSource<bool> OutputEnded = new TaskCompletionSource<bool>();
            public int OpenStreams = 2;
            public readonly Queue<string> Tail = new Queue<string>();
        }

        static readonly Regex ReadyPattern = new Regex("\"ready\"\\s*:\\s*true");
        static readonly Regex PortPattern = new Regex("\"port\"\\s*:\\s*(\\d+)");
        const int TailLines = 20;

        readonly object gate = new object();
        Child current;  // the child that took calls; null while down
        int generation;
        string apiKey = "";
        CancellationTokenSource stopping;
        Task supervisor;
        bool started;

        /// <summary>"http://127.0.0.1:N" while a child is up, else null.</summary>
        public string Address
        {
            get
            {
                lock (gate) return current != null ? "http://127.0.0.1:" + current.Port : null;
            }
        }

        /// <summary>32 hex characters, made fresh by each StartAsync; the same across restarts.</summary>
        public string ApiKey
        {
            get { lock (gate) return apiKey; }
        }

        public int Port
        {
            get { lock (gate) return current != null ? current.Port : 0; }
        }

        /// <summary>The running child's process id, 0 while down.</summary>
        public int Pid
        {
            get { lock (gate) return current != null ? current.Pid : 0; }
        }

        /// <summary>1 once StartAsync succeeded, +1 for each restart.</summary>
        public int Generation
        {
            get { lock (gate) return generation; }
        }

        public bool IsRunning
        {
            get { lock (gate) return current != null; }
        }

        /// <summary>A fresh key: 32 hex characters from the OS's cryptographic random source: /dev/urandom where there
        /// is one (Linux, macOS: no dependency on the OpenSSL version .NET Core would load), else
        /// RandomNumberGenerator (Windows).</summary>
        public static string MakeApiKey()
        {
            var bytes = new byte[16];
            bool read = false;
            if (File.Exists("/dev/urandom"))
            {
                using (var urandom = File.OpenRead("/dev/urandom")) read = urandom.Read(bytes, 0, 16) == 16;
            }
            if (!read)
            {
                using (var random = RandomNumberGenerator.Create()) random.GetBytes(bytes);
            }
            var key = new StringBuilder(32);
            foreach (byte b in bytes) key.Append(b.ToString("x2"));
            return key.ToString();
        }

        /// <summary>The port of a ready line (<c>{"ready": true, "port": N, ...}</c>), or 0 for any other line.</summary>
        public static int ParseReadyLine(string line)
        {
            if (line == null || !line.TrimStart().StartsWith("{", StringComparison.Ordinal)) return 0;
            if (!ReadyPattern.IsMatch(line)) return 0;
            Match port = PortPattern.Match(line);
            int value;
            if (!port.Success || !int.TryParse(port.Groups[1].Value, out value)) return 0;
            return value > 0 && value < 65536 ? value : 0;
        }

        /// <summary>One argument as the C runtime on Windows, and .NET and mono on every OS, split it back out of
        /// ProcessStartInfo.Arguments.</summary>
        public static string QuoteArgument(string arg)
        {
            if (arg.Length > 0 && arg.IndexOfAny(new[] { ' ', '\t', '\n', '\v', '"' }) < 0) return arg;
            var quoted = new StringBuilder("\"");
            for (int i = 0; ; i++)
            {
                int backslashes = 0;
                while (i < arg.Length && arg[i] == '\\')
                {
                    i++;
                    backslashes++;
                }
                if (i == arg.Length)
                {
                    quoted.Append('\\', backslashes * 2);
                    break;
                }
                quoted.Append('\\', arg[i] == '"' ? backslashes * 2 + 1 : backslashes);
                quoted.Append(arg[i]);
            }
            return quoted.Append('"').ToString();
        }

        /// <summary>
        /// Starts the server and waits for its ready line, then starts the supervisor. Throws (with the reason and the
        /// server's last lines) when it could not; nothing then runs and StartAsync may be called again.
        /// </summary>
        public async Task StartAsync(CancellationToken cancellationToken)
        {
            CancellationTokenSource stop;
            lock (gate)
            {
                if (started) throw new InvalidOperationException("npc-sdk: the server is already started");
                if (string.IsNullOrEmpty(FileName)) throw new InvalidOperationException("npc-sdk: no server to start");
                started = true;
                apiKey = MakeApiKey();
                stopping = new CancellationTokenSource();
                stop = stopping;
            }
            try
            {
                using (var linked = CancellationTokenSource.CreateLinkedTokenSource(stop.Token, cancellationToken))
                {
                    await LaunchAsync(linked.Token).ConfigureAwait(false);
                }
            }
            catch
            {
                lock (gate) started = false;
                throw;
            }
            Child late = null;
            lock (gate)
            {
                if (stop.IsCancellationRequested)  // StopAsync ran while this start waited for the ready line
                {
                    late = current;
                    current = null;
                }
                else
                {
                    supervisor = Task.Run(() => SuperviseAsync(stop.Token));
                }
            }
            if (late != null)
            {
                Kill(late.Process);
                await EndAsync(late).ConfigureAwait(false);
                late.Process.Dispose();
                throw new OperationCanceledException("npc-sdk: stopped while starting");
            }
        }

        /// <summary>
        /// Stops the supervisor and the server: the Shutdown RPC with the key, then a kill when it has not ended after
        /// ShutdownGrace. Returns how it ended ("shutdown_rpc", "kill", "already_exited", "not_running").
        /// </summary>
        public async Task<string> StopAsync()
        {
            Task running;
            CancellationTokenSource stop;
            lock (gate)
            {
                if (!started) return "not_running";
                started = false;
                running = supervisor;
                stop = stopping;
                supervisor = null;
            }
            stop.Cancel();
            if (running != null) await running.ConfigureAwait(false);  // from here on this method alone owns the child
            Child child;
            lock (gate)
            {
                child = current;
                current = null;
            }
            if (child == null) return "not_running";
            string how;
            if (child.Process.HasExited)
            {
                how = "already_exited";
            }
            else
            {
                how = "kill";
                if (Connect != null)
                {
                    try
                    {
                        var client = new NpcServiceClient(Connect("http://127.0.0.1:" + child.Port), ApiKey);
                        Task<ShutdownResponse> shutdown = client.ShutdownAsync(
                            new ShutdownRequest(), DateTime.UtcNow.AddSeconds(5), CancellationToken.None).ResponseAsync;
                        if (await Task.WhenAny(shutdown, Task.Delay(5000)).ConfigureAwait(false) == shutdown)
                        {
                            await shutdown.ConfigureAwait(false);
                            if (await ExitedWithinAsync(child.Process, ShutdownGrace).ConfigureAwait(false))
                            {
                                how = "shutdown_rpc";
                            }
                        }
                    }
                    catch (Exception)
                    {
                        // not answering (RpcException, or a transport's own error): killed below
                    }
                }
                if (how == "kill") Kill(child.Process);
            }
            await EndAsync(child).ConfigureAwait(false);
            Raise(new NpcServerEvent
            {
                Kind = NpcServerEventKind.Stopped, Generation = child.Generation, Pid = child.Pid,
                ExitCode = ExitCode(child.Process), Message = how,
            });
            child.Process.Dispose();
            return how;
        }

        /// <summary>StopAsync, waited for on a thread-pool thread (safe to call on Unity's main thread when quitting).
        /// </summary>
        public string Stop(TimeSpan timeout)
        {
            Task<string> stop = Task.Run(() => StopAsync());
            return stop.Wait(timeout) ? stop.Result : "timed_out";
        }

        public void Dispose()
        {
            Stop(ShutdownGrace + TimeSpan.FromSeconds(5));
        }

        // ---- starting ----

        async Task LaunchAsync(CancellationToken cancellationToken)
        {
            var info = new ProcessStartInfo
            {
                FileName = FileName,
                UseShellExecute = false,
                RedirectStandardInput = true,  // the server reads nothing; keeps it off the game's console
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                CreateNoWindow = true,
                StandardOutputEncoding = Encoding.UTF8,
                StandardErrorEncoding = Encoding.UTF8,
            };
            if (!string.IsNullOrEmpty(WorkingDirectory)) info.WorkingDirectory = WorkingDirectory;
            var args = new List<string>(Arguments);
            args.AddRange(new[] { "--port", "0", "--parent-pid", Process.GetCurrentProcess().Id.ToString() });
            if (!string.IsNullOrEmpty(DataDir)) args.AddRange(new[] { "--data-dir", DataDir });
            if (Threads > 0) args.AddRange(new[] { "--threads", Threads.ToString() });
            if (Niceness > 0) args.AddRange(new[] { "--nice", Niceness.ToString() });
            var line = new StringBuilder();
            foreach (string arg in args)
            {
                if (line.Length > 0) line.Append(' ');
                line.Append(QuoteArgument(arg));
            }
            info.Arguments = line.ToString();
            foreach (var pair in Environment) info.EnvironmentVariables[pair.Key] = pair.Value;
            info.EnvironmentVariables[ApiKeyVariable] = ApiKey;

            var child = new Child { Process = new Process { StartInfo = info } };
            child.Process.OutputDataReceived += (sender, e) => OnLine(child, e.Data);
            child.Process.ErrorDataReceived += (sender, e) => OnLine(child, e.Data);
            try
            {
                child.Process.Start();
            }
            catch (Win32Exception e)
            {
                child.Process.Dispose();
                throw new InvalidOperationException("npc-sdk: cannot run " + FileName + ": " + e.Message, e);
            }
            child.Pid = child.Process.Id;
            child.Started = DateTime.UtcNow;
            child.Process.StandardInput.Close();
            child.Process.BeginOutputReadLine();
            child.Process.BeginErrorReadLine();

            string why = null;
            DateTime deadline = DateTime.UtcNow + ReadyTimeout;
            try
            {
                while (!child.Ready.Task.IsCompleted)
                {
                    if (child.Process.HasExited)
                    {
                        // Let the last lines in: they say why.
                        await Task.WhenAny(child.OutputEnded.Task, Task.Delay(2000)).ConfigureAwait(false);
                        if (child.Ready.Task.IsCompleted) break;
                        why = "the server ended before its ready line (exit code " + child.Process.ExitCode + ")";
                        break;
                    }
                    if (DateTime.UtcNow >= deadline)
                    {
                        why = "no ready line within " + ReadyTimeout.TotalMilliseconds + " ms";
                        break;
                    }
                    await Task.WhenAny(child.Ready.Task, Task.Delay(100, cancellationToken)).ConfigureAwait(false);
                    cancellationToken.ThrowIfCancellationRequested();
                }
            }
            catch (OperationCanceledException)
            {
                Kill(child.Process);
                await EndAsync(child).ConfigureAwait(false);
                child.Process.Dispose();
                throw;
            }
            if (why == null && child.Process.HasExited) why = "the server ended just after its ready line";
            if (why != null)
            {
                Kill(child.Process);
                await EndAsync(child).ConfigureAwait(false);
                child.Process.Dispose();
                lock (gate)
                {
                    foreach (string last in child.Tail) why += "\n  " + last;
                }
                throw new InvalidOperationException("npc-sdk: " + why);
            }
            child.Port = child.Ready.Task.Result;
            lock (gate)
            {
                child.Generation = ++generation;
                current = child;
            }
            Raise(new NpcServerEvent
            {
                Kind = NpcServerEventKind.Ready, Generation = child.Generation, Pid = child.Pid, Port = child.Port,
            });
        }

        void OnLine(Child child, string line)
        {
            if (line == null)  // the end of stdout or stderr
            {
                if (Interlocked.Decrement(ref child.OpenStreams) == 0) child.OutputEnded.TrySetResult(true);
                return;
            }
            if (!child.Ready.Task.IsCompleted)
            {
                int port = ParseReadyLine(line);
                if (port > 0 && child.Ready.TrySetResult(port)) return;  // the first ready line; later ones are logs
            }
            lock (gate)
            {
                child.Tail.Enqueue(line);
                if (child.Tail.Count > TailLines) child.Tail.Dequeue();
            }
            Action<string> log = Log;
            if (log != null) log(line);
        }

        // ---- watching ----

        async Task SuperviseAsync(CancellationToken stop)
        {
            TimeSpan delay = FirstBackoff;
            try
            {
                while (true)
                {
                    Child child;
                    lock (gate) child = current;
                    if (child == null) return;  // StopAsync came first
                    int failedChecks = 0;
                    DateTime nextCheck = DateTime.UtcNow + HealthInterval;
                    while (!child.Process.HasExited)
                    {
                        await Task.Delay(100, stop).ConfigureAwait(false);
                        if (HealthInterval <= TimeSpan.Zero || Connect == null || DateTime.UtcNow < nextCheck) continue;
                        string problem = await CheckHealthAsync(child.Port, stop).ConfigureAwait(false);
                        stop.ThrowIfCancellationRequested();
                        nextCheck = DateTime.UtcNow + HealthInterval;
                        if (problem == null)
                        {
                            failedChecks = 0;
                            continue;
                        }
                        failedChecks++;
                        Raise(new NpcServerEvent
                        {
                            Kind = NpcServerEventKind.Unhealthy, Generation = child.Generation, Pid = child.Pid,
                            Port = child.Port, Message = problem,
                        });
                        if (UnhealthyAfter > 0 && failedChecks >= UnhealthyAfter) Kill(child.Process);
                    }
                    await EndAsync(child).ConfigureAwait(false);
                    lock (gate)
                    {
                        if (current == child) current = null;
                    }
                    Raise(new NpcServerEvent
                    {
                        Kind = NpcServerEventKind.Exited, Generation = child.Generation, Pid = child.Pid,
                        ExitCode = ExitCode(child.Process),
                    });
                    child.Process.Dispose();
                    if (!Restart) return;
                    if (DateTime.UtcNow - child.Started >= HealthyAfter) delay = FirstBackoff;
                    while (true)
                    {
                        Raise(new NpcServerEvent
                        {
                            Kind = NpcServerEventKind.Restarting, Generation = child.Generation, Delay = delay,
                        });
                        await Task.Delay(delay, stop).ConfigureAwait(false);
                        delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, MaxBackoff.Ticks));
                        try
                        {
                            await LaunchAsync(stop).ConfigureAwait(false);
                            break;
                        }
                        catch (InvalidOperationException e)
                        {
                            Raise(new NpcServerEvent
                            {
                                Kind = NpcServerEventKind.StartFailed, Generation = child.Generation,
                                Message = e.Message,
                            });
                        }
                    }
                }
            }
            catch (OperationCanceledException)
            {
                // StopAsync: it takes the child from here
            }
            catch (Exception e)
            {
                Action<string> log = Log;
                if (log != null) log("npc-sdk: the supervisor stopped: " + e);
            }
        }

        /// <summary>Null when the server on this port answers SERVING, else what went wrong.</summary>
        public Task<string> CheckHealthAsync(int port)
        {
            return CheckHealthAsync(port, CancellationToken.None);
        }

        /// <summary>As above; the token ends the wait early (the result is then "cancelled").</summary>
        public async Task<string> CheckHealthAsync(int port, CancellationToken cancellationToken)
        {
            if (Connect == null) return "no Connect to make a client with";
            try
            {
                var client = new NpcServiceClient(Connect("http://127.0.0.1:" + port), null);
                Task<bool> check = client.IsServingAsync(DateTime.UtcNow + HealthTimeout, cancellationToken);
                // Not every transport keeps the deadline: the check gives up on its own as well.
                if (await Task.WhenAny(check, Task.Delay(HealthTimeout, cancellationToken)).ConfigureAwait(false)
                    != check)
                {
                    return cancellationToken.IsCancellationRequested
                        ? "cancelled" : "no answer within " + HealthTimeout.TotalMilliseconds + " ms";
                }
                return await check.ConfigureAwait(false) ? null : "NOT_SERVING";
            }
            catch (RpcException e)
            {
                return e.StatusCode + ": " + e.Status.Detail;
            }
            catch (Exception e)  // a transport's own error (connection refused, ...): unhealthy all the same
            {
                return e.GetType().Name + ": " + e.Message;
            }
        }

        // ---- ending ----

        static async Task<bool> ExitedWithinAsync(Process process, TimeSpan timeout)
        {
            DateTime deadline = DateTime.UtcNow + timeout;
            while (!process.HasExited)
            {
                if (DateTime.UtcNow >= deadline) return false;
                await Task.Delay(50).ConfigureAwait(false);
            }
            return true;
        }

        static void Kill(Process process)
        {
            try
            {
                if (!process.HasExited) process.Kill();
            }
            catch (InvalidOperationException)
            {
                // it ended meanwhile
            }
            catch (Win32Exception)
            {
                // it is ending
            }
        }

        // After the child ended or was killed: wait for its end, and for the last of its output (a grandchild holding
        // the pipe may keep it open: not longer than 2 s).
        static async Task EndAsync(Child child)
        {
            await ExitedWithinAsync(child.Process, TimeSpan.FromSeconds(30)).ConfigureAwait(false);
            await Task.WhenAny(child.OutputEnded.Task, Task.Delay(2000)).ConfigureAwait(false);
        }

        static int ExitCode(Process process)
        {
            try
            {
                return process.HasExited ? process.ExitCode : -1;
            }
            catch (InvalidOperationException)
            {
                return -1;
            }
        }

        void Raise(NpcServerEvent e)
        {
            Action<NpcServerEvent> changed = Changed;
            if (changed == null) return;
            try
            {
                changed(e);
            }
            catch (Exception error)  // a handler's bug must not stop the supervisor
            {
                Action<string> log = Log;
                if (log != null) log("npc-sdk: a Changed handler threw: " + error);
            }
        }
    }
}
