// Compile-time stand-in for the parts of Grpc.Core.Api 2.x and Grpc.Net.Client 2.x that the samples touch, for
// building them with mono's mcs where NuGet is not reachable (tests/clients/test_csharp_samples.py). Every
// signature here is copied from the real API: namespaces, type names, constructor and member shapes, so code that
// compiles against this compiles against the real packages. Members that would do I/O throw: this is not a client.
//
//   Grpc.Core: MethodType, Marshaller<T>, Marshallers.Create, IMethod, Method<TRequest, TResponse>, CallInvoker
//     (BlockingUnaryCall, AsyncUnaryCall, AsyncServerStreamingCall), CallOptions, Metadata (+ Metadata.Entry),
//     AsyncUnaryCall<T>, AsyncServerStreamingCall<T>, IAsyncStreamReader<T>, AsyncStreamExtensions.MoveNext,
//     Status, StatusCode, RpcException, ChannelBase
//   Grpc.Net.Client: GrpcChannel (ForAddress, CreateCallInvoker, Dispose), GrpcChannelOptions (HttpHandler,
//     HttpClient, MaxReceiveMessageSize, MaxSendMessageSize, DisposeHttpClient)
using System;
using System.Collections;
using System.Collections.Generic;
using System.Net.Http;
using System.Runtime.CompilerServices;
using System.Threading;
using System.Threading.Tasks;

namespace Grpc.Core
{
    public enum MethodType { Unary, ClientStreaming, ServerStreaming, DuplexStreaming }

    public enum StatusCode
    {
        OK = 0, Cancelled = 1, Unknown = 2, InvalidArgument = 3, DeadlineExceeded = 4, NotFound = 5,
        AlreadyExists = 6, PermissionDenied = 7, ResourceExhausted = 8, FailedPrecondition = 9, Aborted = 10,
        OutOfRange = 11, Unimplemented = 12, Internal = 13, Unavailable = 14, DataLoss = 15, Unauthenticated = 16
    }

    public struct Status
    {
        public Status(StatusCode statusCode, string detail) : this(statusCode, detail, null) { }

        public Status(StatusCode statusCode, string detail, Exception debugException)
        {
            StatusCode = statusCode;
            Detail = detail;
            DebugException = debugException;
        }

        public StatusCode StatusCode { get; }
        public string Detail { get; }
        public Exception DebugException { get; }
    }

    public class RpcException : Exception
    {
        public RpcException(Status status) : this(status, new Metadata(), status.Detail) { }
        public RpcException(Status status, string message) : this(status, new Metadata(), message) { }
        public RpcException(Status status, Metadata trailers) : this(status, trailers, status.Detail) { }

        public RpcException(Status status, Metadata trailers, string message) : base(message)
        {
            Status = status;
            Trailers = trailers;
        }

        public Status Status { get; }
        public StatusCode StatusCode { get { return Status.StatusCode; } }
        public Metadata Trailers { get; }
    }

    public class Marshaller<T>
    {
        public Marshaller(Func<T, byte[]> serializer, Func<byte[], T> deserializer)
        {
            Serializer = serializer;
            Deserializer = deserializer;
        }

        public Func<T, byte[]> Serializer { get; }
        public Func<byte[], T> Deserializer { get; }
    }

    public static class Marshallers
    {
        public static Marshaller<T> Create<T>(Func<T, byte[]> serializer, Func<byte[], T> deserializer)
        {
            return new Marshaller<T>(serializer, deserializer);
        }
    }

    public interface IMethod
    {
        MethodType Type { get; }
        string ServiceName { get; }
        string Name { get; }
        string FullName { get; }
    }

    public class Method<TRequest, TResponse> : IMethod
    {
        public Method(
            MethodType type, string serviceName, string name, Marshaller<TRequest> requestMarshaller,
            Marshaller<TResponse> responseMarshaller)
        {
            Type = type;
            ServiceName = serviceName;
            Name = name;
            RequestMarshaller = requestMarshaller;
            ResponseMarshaller = responseMarshaller;
        }

        public MethodType Type { get; }
        public string ServiceName { get; }
        public string Name { get; }
        public string FullName { get { return "/" + ServiceName + "/" + Name; } }
        public Marshaller<TRequest> RequestMarshaller { get; }
        public Marshaller<TResponse> ResponseMarshaller { get; }
    }

    public sealed class Metadata : IList<Metadata.Entry>
    {
        public static readonly Metadata Empty = new Metadata();
        readonly List<Entry> entries = new List<Entry>();

        public sealed class Entry
        {
            public Entry(string key, string value) { Key = key; Value = value; }
            public Entry(string key, byte[] valueBytes) { Key = key; ValueBytes = valueBytes; }
            public string Key { get; }
            public string Value { get; }
            public byte[] ValueBytes { get; }
            public bool IsBinary { get { return ValueBytes != null; } }
        }

        public void Add(string key, string value) { entries.Add(new Entry(key, value)); }
        public void Add(string key, byte[] valueBytes) { entries.Add(new Entry(key, valueBytes)); }
        public Entry Get(string key) { return entries.Find(e => e.Key == key); }
        public string GetValue(string key) { Entry e = Get(key); return e == null ? null : e.Value; }
        public int IndexOf(Entry item) { return entries.IndexOf(item); }
        public void Insert(int index, Entry item) { entries.Insert(index, item); }
        public void RemoveAt(int index) { entries.RemoveAt(index); }
        public Entry this[int index] { get { return entries[index]; } set { entries[index] = value; } }
        public void Add(Entry item) { entries.Add(item); }
        public void Clear() { entries.Clear(); }
        public bool Contains(Entry item) { return entries.Contains(item); }
        public void CopyTo(Entry[] array, int arrayIndex) { entries.CopyTo(array, arrayIndex); }
        public int Count { get { return entries.Count; } }
        public bool IsReadOnly { get { return false; } }
        public bool Remove(Entry item) { return entries.Remove(item); }
        public IEnumerator<Entry> GetEnumerator() { return entries.GetEnumerator(); }
        IEnumerator IEnumerable.GetEnumerator() { return entries.GetEnumerator(); }
    }

    public struct CallOptions
    {
        public CallOptions(
            Metadata headers = null, DateTime? deadline = null,
            CancellationToken cancellationToken = default(CancellationToken))
        {
            Headers = headers;
            Deadline = deadline;
            CancellationToken = cancellationToken;
        }

        public Metadata Headers { get; }
        public DateTime? Deadline { get; }
        public CancellationToken CancellationToken { get; }
        public CallOptions WithHeaders(Metadata headers) { return new CallOptions(headers, Deadline, CancellationToken); }
        public CallOptions WithDeadline(DateTime deadline) { return new CallOptions(Headers, deadline, CancellationToken); }

        public CallOptions WithCancellationToken(CancellationToken cancellationToken)
        {
            return new CallOptions(Headers, Deadline, cancellationToken);
        }
    }

    public interface IAsyncStreamReader<out T>
    {
        T Current { get; }
        Task<bool> MoveNext(CancellationToken cancellationToken);
    }

    public static class AsyncStreamExtensions
    {
        public static Task<bool> MoveNext<T>(this IAsyncStreamReader<T> streamReader) where T : class
        {
            return streamReader.MoveNext(CancellationToken.None);
        }
    }

    public sealed class AsyncUnaryCall<TResponse> : IDisposable
    {
        readonly Task<TResponse> responseAsync;
        readonly Task<Metadata> responseHeadersAsync;
        readonly Func<Status> getStatusFunc;
        readonly Func<Metadata> getTrailersFunc;
        readonly Action disposeAction;

        public AsyncUnaryCall(
            Task<TResponse> responseAsync, Task<Metadata> responseHeadersAsync, Func<Status> getStatusFunc,
            Func<Metadata> getTrailersFunc, Action disposeAction)
        {
            this.responseAsync = responseAsync;
            this.responseHeadersAsync = responseHeadersAsync;
            this.getStatusFunc = getStatusFunc;
            this.getTrailersFunc = getTrailersFunc;
            this.disposeAction = disposeAction;
        }

        public Task<TResponse> ResponseAsync { get { return responseAsync; } }
        public Task<Metadata> ResponseHeadersAsync { get { return responseHeadersAsync; } }
        public TaskAwaiter<TResponse> GetAwaiter() { return responseAsync.GetAwaiter(); }
        public Status GetStatus() { return getStatusFunc(); }
        public Metadata GetTrailers() { return getTrailersFunc(); }
        public void Dispose() { disposeAction(); }
    }

    public sealed class AsyncServerStreamingCall<TResponse> : IDisposable
    {
        readonly IAsyncStreamReader<TResponse> responseStream;
        readonly Task<Metadata> responseHeadersAsync;
        readonly Func<Status> getStatusFunc;
        readonly Func<Metadata> getTrailersFunc;
        readonly Action disposeAction;

        public AsyncServerStreamingCall(
            IAsyncStreamReader<TResponse> responseStream, Task<Metadata> responseHeadersAsync,
            Func<Status> getStatusFunc, Func<Metadata> getTrailersFunc, Action disposeAction)
        {
            this.responseStream = responseStream;
            this.responseHeadersAsync = responseHeadersAsync;
            this.getStatusFunc = getStatusFunc;
            this.getTrailersFunc = getTrailersFunc;
            this.disposeAction = disposeAction;
        }

        public IAsyncStreamReader<TResponse> ResponseStream { get { return responseStream; } }
        public Task<Metadata> ResponseHeadersAsync { get { return responseHeadersAsync; } }
        public Status GetStatus() { return getStatusFunc(); }
        public Metadata GetTrailers() { return getTrailersFunc(); }
        public void Dispose() { disposeAction(); }
    }

    public abstract class CallInvoker
    {
        public abstract TResponse BlockingUnaryCall<TRequest, TResponse>(
            Method<TRequest, TResponse> method, string host, CallOptions options, TRequest request)
            where TRequest : class where TResponse : class;

        public abstract AsyncUnaryCall<TResponse> AsyncUnaryCall<TRequest, TResponse>(
            Method<TRequest, TResponse> method, string host, CallOptions options, TRequest request)
            where TRequest : class where TResponse : class;

        public abstract AsyncServerStreamingCall<TResponse> AsyncServerStreamingCall<TRequest, TResponse>(
            Method<TRequest, TResponse> method, string host, CallOptions options, TRequest request)
            where TRequest : class where TResponse : class;
    }

    public abstract class ChannelBase
    {
        protected ChannelBase(string target) { Target = target; }
        public string Target { get; }
        public abstract CallInvoker CreateCallInvoker();
    }
}

namespace Grpc.Net.Client
{
    public sealed class GrpcChannelOptions
    {
        public HttpMessageHandler HttpHandler { get; set; }
        public HttpClient HttpClient { get; set; }
        public bool DisposeHttpClient { get; set; }
        public int? MaxReceiveMessageSize { get; set; }
        public int? MaxSendMessageSize { get; set; }
    }

    public sealed class GrpcChannel : Grpc.Core.ChannelBase, IDisposable
    {
        GrpcChannel(Uri address, GrpcChannelOptions channelOptions) : base(address.Authority) { }

        public static GrpcChannel ForAddress(string address)
        {
            return ForAddress(new Uri(address), new GrpcChannelOptions());
        }

        public static GrpcChannel ForAddress(string address, GrpcChannelOptions channelOptions)
        {
            return ForAddress(new Uri(address), channelOptions);
        }

        public static GrpcChannel ForAddress(Uri address, GrpcChannelOptions channelOptions)
        {
            return new GrpcChannel(address, channelOptions);
        }

        public override Grpc.Core.CallInvoker CreateCallInvoker()
        {
            throw new NotSupportedException("compile-time stand-in: use the real Grpc.Net.Client package");
        }

        public Task ShutdownAsync() { return Task.CompletedTask; }
        public void Dispose() { }
    }
}
