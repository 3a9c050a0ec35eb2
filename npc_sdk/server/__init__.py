"""The gRPC server that engines talk to: npc.v1.NpcService over the runtime.

Owns: the servicer (`service`), the app that serves it (`app`), the engine it runs on (`engine`: model, store and
turn backend, built once for `serve` and for each cluster replica), the turn backends' contract (`backend`), the
scheduler thread that owns the model and batches turns (`scheduler`, with `residency`, `warmup` and `replay`),
cluster mode (`remote`, `cluster_replica`), the event pump both stream turns through (`pump`), the session stores
(`store/`), interceptors for API keys and undecodable requests (`interceptors`), signed save games (`snapshots`),
per-key limits (`api_keys`) and the WebSocket gateway (`ws_gateway`).

May import: everything in `npc_sdk` below it (runtime, personas, wire, errors). Nothing in `npc_sdk` imports the
server except the CLI.
"""
