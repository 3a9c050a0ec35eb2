"""The gRPC server that engines talk to: npc.v1.NpcService over the runtime.

Owns: the servicer (`service`), the app that wires it up and serves it (`app`), interceptors for API keys and
undecodable requests (`interceptors`), signed save games (`snapshots`), the scheduler thread that owns the model
and batches turns (`scheduler`), the SQLite session store (`store`), per-key limits (`api_keys`) and the
WebSocket gateway (`ws_gateway`).

May import: everything in `npc_sdk` below it (runtime, personas, wire, errors). Nothing in `npc_sdk` imports the
server except the CLI.
"""
