// Compile-time stand-in for the System.Net.Http types of .NET 6+ that the Godot C# sample uses (Godot 4 .NET runs
// on .NET 6+). Mono's System.Net.Http predates SocketsHttpHandler's HTTP/2 settings, so the Godot sample is built
// against this instead of mono's assembly (tests/clients/test_csharp_samples.py); members copied from .NET 6.
using System;
using System.Threading;
using System.Threading.Tasks;

namespace System.Net.Http
{
    public class HttpRequestMessage { }

    public class HttpResponseMessage { }

    public abstract class HttpMessageHandler : IDisposable
    {
        protected internal abstract Task<HttpResponseMessage> SendAsync(
            HttpRequestMessage request, CancellationToken cancellationToken);

        public void Dispose() { }
    }

    public sealed class SocketsHttpHandler : HttpMessageHandler
    {
        public bool EnableMultipleHttp2Connections { get; set; }
        public TimeSpan KeepAlivePingDelay { get; set; }
        public TimeSpan KeepAlivePingTimeout { get; set; }
        public TimeSpan PooledConnectionIdleTimeout { get; set; }

        protected internal override Task<HttpResponseMessage> SendAsync(
            HttpRequestMessage request, CancellationToken cancellationToken)
        {
            throw new NotSupportedException("compile-time stand-in");
        }
    }

    public class HttpClient : IDisposable
    {
        public HttpClient(HttpMessageHandler handler) { }
        public void Dispose() { }
    }
}
