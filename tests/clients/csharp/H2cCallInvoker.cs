// Test-only transport for tests/clients/test_csharp_dotnet.py: a CallInvoker that speaks gRPC over HTTP/2 cleartext
// (h2c) with .NET Core's own HttpClient, standing in for Grpc.Net.Client's GrpcChannel (NuGet is not reachable
// here). It implements the wire protocol the real one does for unary and server-streaming calls: length-prefixed
// messages, `te: trailers`, status from the trailers (or the headers of a trailers-only response), cancellation
// by resetting the stream. The samples' NpcServiceClient runs on top of it unchanged.
using System;
using System.IO;
using System.Net.Http;
using System.Net.Http.Headers;
using System.Threading;
using System.Threading.Tasks;
using Grpc.Core;

namespace NpcSdk.Tests
{
    public sealed class H2cCallInvoker : CallInvoker
    {
        readonly HttpClient http;
        readonly Uri address;

        public H2cCallInvoker(string address)
        {
            // .NET Core 3.x needs this switch before the first HttpClient to use HTTP/2 without TLS
            AppContext.SetSwitch("System.Net.Http.SocketsHttpHandler.Http2UnencryptedSupport", true);
            http = new HttpClient();
            http.Timeout = Timeout.InfiniteTimeSpan;
            this.address = new Uri(address);
        }

        HttpRequestMessage Request<TRequest, TResponse>(
            Method<TRequest, TResponse> method, CallOptions options, TRequest request)
        {
            byte[] payload = method.RequestMarshaller.Serializer(request);
            var body = new byte[5 + payload.Length];
            body[1] = (byte)(payload.Length >> 24);
            body[2] = (byte)(payload.Length >> 16);
            body[3] = (byte)(payload.Length >> 8);
            body[4] = (byte)payload.Length;
            Buffer.BlockCopy(payload, 0, body, 5, payload.Length);
            var message = new HttpRequestMessage(HttpMethod.Post, new Uri(address, method.FullName));
            message.Version = new Version(2, 0);
            message.Content = new ByteArrayContent(body);
            message.Content.Headers.ContentType = new MediaTypeHeaderValue("application/grpc");
            message.Headers.TryAddWithoutValidation("te", "trailers");
            if (options.Headers != null)
            {
                foreach (Metadata.Entry entry in options.Headers)
                {
                    message.Headers.TryAddWithoutValidation(entry.Key, entry.Value);
                }
            }
            return message;
        }

        static string Header(HttpHeaders headers, string name)
        {
            System.Collections.Generic.IEnumerable<string> values;
            return headers != null && headers.TryGetValues(name, out values) ? string.Join(",", values) : null;
        }

        internal static Status StatusOf(HttpResponseMessage response)
        {
            string code = Header(response.TrailingHeaders, "grpc-status") ?? Header(response.Headers, "grpc-status");
            string detail = Header(response.TrailingHeaders, "grpc-message") ?? Header(response.Headers, "grpc-message");
            if (code == null)
            {
                return new Status(StatusCode.Internal, "no grpc-status (HTTP " + (int)response.StatusCode + ")");
            }
            return new Status((StatusCode)int.Parse(code), detail == null ? "" : Uri.UnescapeDataString(detail));
        }

        internal static async Task<byte[]> ReadMessage(Stream stream, CancellationToken cancellationToken)
        {
            var prefix = new byte[5];
            if (!await ReadExactly(stream, prefix, cancellationToken)) return null;
            int length = (prefix[1] << 24) | (prefix[2] << 16) | (prefix[3] << 8) | prefix[4];
            var message = new byte[length];
            if (!await ReadExactly(stream, message, cancellationToken)) throw new IOException("truncated message");
            return message;
        }

        static async Task<bool> ReadExactly(Stream stream, byte[] buffer, CancellationToken cancellationToken)
        {
            int read = 0;
            while (read < buffer.Length)
            {
                int n = await stream.ReadAsync(buffer, read, buffer.Length - read, cancellationToken);
                if (n == 0) return read == 0 && buffer.Length > 0 ? false : read == buffer.Length;
                read += n;
            }
            return true;
        }

        public override TResponse BlockingUnaryCall<TRequest, TResponse>(
            Method<TRequest, TResponse> method, string host, CallOptions options, TRequest request)
        {
            return AsyncUnaryCall(method, host, options, request).ResponseAsync.GetAwaiter().GetResult();
        }

        public override AsyncUnaryCall<TResponse> AsyncUnaryCall<TRequest, TResponse>(
            Method<TRequest, TResponse> method, string host, CallOptions options, TRequest request)
        {
            var cancel = CancellationTokenSource.CreateLinkedTokenSource(options.CancellationToken);
            Status status = new Status(StatusCode.OK, "");
            Func<Task<TResponse>> run = async () =>
            {
                var response = await http.SendAsync(
                    Request(method, options, request), HttpCompletionOption.ResponseHeadersRead, cancel.Token);
                var stream = await response.Content.ReadAsStreamAsync();
                byte[] message = await ReadMessage(stream, cancel.Token);
                while (await ReadMessage(stream, cancel.Token) != null) { }
                status = StatusOf(response);
                if (status.StatusCode != StatusCode.OK) throw new RpcException(status);
                return method.ResponseMarshaller.Deserializer(message);
            };
            return new AsyncUnaryCall<TResponse>(
                run(), Task.FromResult(new Metadata()), () => status, () => new Metadata(), () => cancel.Cancel());
        }

        public override AsyncServerStreamingCall<TResponse> AsyncServerStreamingCall<TRequest, TResponse>(
            Method<TRequest, TResponse> method, string host, CallOptions options, TRequest request)
        {
            var cancel = CancellationTokenSource.CreateLinkedTokenSource(options.CancellationToken);
            var response = http.SendAsync(
                Request(method, options, request), HttpCompletionOption.ResponseHeadersRead, cancel.Token);
            var reader = new Reader<TResponse>(response, method.ResponseMarshaller, cancel);
            return new AsyncServerStreamingCall<TResponse>(
                reader, Task.FromResult(new Metadata()), () => reader.Status, () => new Metadata(), reader.Close);
        }

        sealed class Reader<T> : IAsyncStreamReader<T>
        {
            readonly Task<HttpResponseMessage> response;
            readonly Marshaller<T> marshaller;
            readonly CancellationTokenSource cancel;
            Stream stream;

            public Reader(Task<HttpResponseMessage> response, Marshaller<T> marshaller, CancellationTokenSource cancel)
            {
                this.response = response;
                this.marshaller = marshaller;
                this.cancel = cancel;
                Status = new Status(StatusCode.OK, "");
            }

            public T Current { get; private set; }
            public Status Status { get; private set; }

            public async Task<bool> MoveNext(CancellationToken cancellationToken)
            {
                try
                {
                    HttpResponseMessage message = await response;
                    if (stream == null) stream = await message.Content.ReadAsStreamAsync();
                    using (cancellationToken.Register(() => cancel.Cancel()))
                    {
                        byte[] bytes = await ReadMessage(stream, cancel.Token);
                        if (bytes != null)
                        {
                            Current = marshaller.Deserializer(bytes);
                            return true;
                        }
                    }
                    Status = StatusOf(message);
                    if (Status.StatusCode != StatusCode.OK) throw new RpcException(Status);
                    return false;
                }
                catch (OperationCanceledException)
                {
                    Status = new Status(StatusCode.Cancelled, "cancelled by the client");
                    Close();
                    throw new RpcException(Status);
                }
            }

            /// <summary>
            /// Cancels and disposes the response: on a stream not read to its end, HttpClient then sends RST_STREAM
            /// (CANCEL), as Grpc.Net.Client does, so the server stops the turn now rather than when the connection
            /// closes. (A cancelled ReadAsync alone leaves the HTTP/2 stream open.)
            /// </summary>
            public void Close()
            {
                cancel.Cancel();
                if (stream != null) stream.Dispose();
                if (response.Status == TaskStatus.RanToCompletion) response.Result.Dispose();
            }
        }
    }
}
