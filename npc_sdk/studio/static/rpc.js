// rpc.js: the page's one WebSocket to the studio. NpcService methods go on to the gRPC server (the gateway's
// frames, docs/websocket.md); the studio's own methods (ListFiles, CheckFile, ...) are answered by the studio.

const KEY = "npc-studio-api-key"; // sessionStorage: the key lives in this tab only, never in a file

export class RpcError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

export class Rpc extends EventTarget {
  constructor(url) {
    super();
    this.url = url;
    this.ws = null;
    this.open = false;
    this.queue = [];
    this.calls = new Map(); // id -> {resolve, reject, onEvent}
    this.next = 1;
    this.retry = 500;
  }

  get key() { return sessionStorage.getItem(KEY) || ""; }
  set key(value) { value ? sessionStorage.setItem(KEY, value) : sessionStorage.removeItem(KEY); }

  connect() {
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.onopen = () => {
      this.open = true;
      this.retry = 500;
      this.status("open");
      for (const frame of this.queue.splice(0)) ws.send(frame);
    };
    ws.onclose = () => {
      this.open = false;
      this.status("closed");
      for (const [id, call] of this.calls) call.reject(new RpcError("UNAVAILABLE", "the connection to the studio closed"));
      this.calls.clear();
      setTimeout(() => this.connect(), this.retry);
      this.retry = Math.min(this.retry * 2, 8000);
    };
    ws.onmessage = (msg) => this.receive(JSON.parse(msg.data));
  }

  status(state) { this.dispatchEvent(new CustomEvent("status", {detail: state})); }

  receive(frame) {
    const call = this.calls.get(frame.id);
    if (!call) return;
    if (frame.error) {
      this.calls.delete(frame.id);
      if (frame.error.code === "UNAUTHENTICATED") this.dispatchEvent(new CustomEvent("unauthenticated"));
      call.reject(new RpcError(frame.error.code, frame.error.message));
    } else if (frame.response !== undefined) {
      this.calls.delete(frame.id);
      call.resolve(frame.response);
    } else if (frame.event) {
      call.onEvent(frame.event);
      if (frame.event.done) {
        this.calls.delete(frame.id);
        call.resolve(frame.event.done);
      }
    }
  }

  send(method, request, onEvent) {
    const id = "c" + this.next++;
    const frame = JSON.stringify({id, method, request, apiKey: this.key || undefined});
    const promise = new Promise((resolve, reject) => this.calls.set(id, {resolve, reject, onEvent}));
    if (this.open) this.ws.send(frame);
    else this.queue.push(frame);
    return {id, promise};
  }

  // A unary call: resolves with the response object, rejects with RpcError.
  call(method, request = {}) { return this.send(method, request).promise; }

  // A streaming call (Chat): `onEvent` gets each event ({action}, {delta}, {done}); resolves with the done.
  stream(method, request, onEvent) {
    const {id, promise} = this.send(method, request, onEvent);
    return {promise, cancel: () => this.open && this.ws.send(JSON.stringify({id, cancel: true}))};
  }
}
