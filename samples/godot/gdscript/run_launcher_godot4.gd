# Headless check of npc_server_process.gd with a real bundle (npc-sdk bundle), as tests/clients/test_godot_launcher.py
# runs it:
#   NPC_BUNDLE=/path/to/bundle NPC_DATA_DIR=/path/to/saves NPC_MODE=crash \
#     godot --headless --path DIR -s run_launcher_godot4.gd
# (DIR holds a project.godot and the three scripts: this one, npc_server_process.gd and npc_client_godot4.gd.)
# NPC_MODE:
#   crash  start the server through the launcher, talk, OS.kill() the server while a reply streams, wait for the
#          launcher to bring it back on a new port, carry on the same session, stop it;
#   hold   start it, make one turn, print "holding" and wait to be killed (the server must then end by itself);
#   backoff  NPC_EXECUTABLE: a stand-in that runs the bundle once and then fails at once: kill the server and
#          watch the launcher retry with a doubling delay; stop it while it waits;
#   pair   two launchers side by side (data dirs DIR/a and DIR/b): both up on their own ports; a's key is refused by
#          b; a stopped with stop(), b by dropping the last reference to its launcher.
# Optional: NPC_MAX_TOKENS (24), NPC_TIMEOUT_S (600), NPC_THREADS (1).
# Output: one JSON object per line on stdout, each with an "event" (Godot's own lines never start with "{"); the
# server's lines go to stderr as "server: <line>". Exit status 0 only after {"event": "result", "ok": true}.
extends SceneTree

const NpcServerProcess = preload("npc_server_process.gd")
const NpcClient = preload("npc_client_godot4.gd")
const PERSONA = {
	"name": "Brakka",
	"description": "A gruff dwarven blacksmith who runs the forge in Emberfall.",
}
const FIRST = "Keep my sword safe until I come back."
const STORY = "Tell me the whole story of your forge, from the very beginning."
const THIRD = "Do you still have my sword?"

var mode := ""
var max_tokens := 24
var deadline_ms := 0
var finished := false
var step := ""  # what the crash and hold scenarios wait for

var server  # NpcServerProcess
var client  # NpcClient of the game, remade for each address
var session_id := ""
var calls := {}  # call id -> what it was for
var first_reply := ""
var history_after_restart := []
var history_after_third := []
var first_pid := -1
var killed_ms := 0
var deltas := 0
var partial := ""

var restarts := 0  # backoff: "restarting" signals seen
var pair := {}  # name -> NpcServerProcess
var pair_up := {}  # name -> {"pid", "port", "ws_port"}


func _initialize():
	Engine.max_fps = 200  # poll every 5 ms; a headless loop would otherwise spin a core
	report("engine", {"version": Engine.get_version_info()["string"], "pid": OS.get_process_id()})
	mode = OS.get_environment("NPC_MODE")
	max_tokens = int(_env("NPC_MAX_TOKENS", "24"))
	deadline_ms = Time.get_ticks_msec() + int(_env("NPC_TIMEOUT_S", "600")) * 1000
	var bundle := OS.get_environment("NPC_BUNDLE")
	var data := OS.get_environment("NPC_DATA_DIR")
	if bundle == "" or data == "":
		fail("set NPC_BUNDLE and NPC_DATA_DIR")
		return
	if mode == "crash" or mode == "hold":
		server = make_server(bundle, data, "")
		server.ready.connect(_on_ready)
		server.restarted.connect(_on_restarted)
		start_server(server)
	elif mode == "backoff":
		server = make_server(bundle, data, "")
		server.executable = OS.get_environment("NPC_EXECUTABLE")
		server.ready.connect(_on_backoff_ready)
		server.restarting.connect(_on_backoff_restarting)
		start_server(server)
	elif mode == "pair":
		for name in ["a", "b"]:
			var launcher = make_server(bundle, data.path_join(name), name)
			launcher.ready.connect(_on_pair_ready.bind(name))
			pair[name] = launcher
		for name in pair:  # both started before either is reached: no connection of one leaks into the other
			start_server(pair[name])
	else:
		fail("NPC_MODE: crash, hold, backoff or pair, not %s" % mode)


func _process(_delta: float) -> bool:
	if finished:
		return false
	if server != null:
		server.poll()
	for name in pair:
		pair[name].poll()
	if client != null:
		client.poll()
	if Time.get_ticks_msec() > deadline_ms:
		fail("timed out while waiting for " + step)
	return false


func make_server(bundle: String, data: String, name: String):
	var launcher = NpcServerProcess.new()
	launcher.executable = bundle.path_join("npc-server")
	launcher.data_dir = data
	launcher.threads = int(_env("NPC_THREADS", "1"))
	launcher.health_timeout_s = 60.0  # two cores, and a model may be training on them
	var tag := "server" if name == "" else "server " + name
	launcher.log_line.connect(func(line): printerr(tag + ": " + line))
	launcher.exited.connect(func(code): report("exited", {"name": name, "exit_code": code}))
	launcher.restarting.connect(func(delay_s): report("restarting", {"name": name, "delay_ms": int(delay_s * 1000)}))
	launcher.start_failed.connect(func(message): report("start_failed", {"name": name, "message": message}))
	launcher.unhealthy.connect(func(message): report("unhealthy", {"name": name, "message": message}))
	launcher.stopped.connect(func(): report("stopped", {"name": name}))
	return launcher


func start_server(launcher) -> void:
	step = "the ready line"
	var err: Error = launcher.start()
	report("started", {"err": err, "pid": launcher.pid, "key_in_godot_env": OS.has_environment("NPC_SDK_API_KEY")})
	if err != OK:
		fail("start: " + launcher.last_error)


func describe(launcher) -> Dictionary:
	return {
		"generation": launcher.generation, "pid": launcher.pid, "port": launcher.port,
		"ws_port": launcher.ws_port, "address": launcher.address,
	}


# ---- crash and hold ------------------------------------------------------------------------------------------


func _on_ready(address: String) -> void:
	report("ready", describe(server))
	var key: String = server.api_key
	report("key", {"key": key, "chars": key.length(), "hex": key.is_valid_hex_number(), "in_godot_env": OS.has_environment("NPC_SDK_API_KEY")})
	first_pid = server.pid
	step = "the game's connection"
	connect_client(address)


func connect_client(address: String) -> void:
	if client != null:
		client.close()
	client = NpcClient.new()
	client.api_key = server.api_key
	client.connected.connect(_on_connected)
	client.response.connect(_on_response)
	client.delta.connect(_on_delta)
	client.done.connect(_on_done)
	client.failed.connect(_on_failed)
	client.disconnected.connect(_on_disconnected)
	if client.connect_to(address) != OK:
		fail("cannot connect to " + address)


func call_rpc(what: String, method: String, request: Dictionary) -> void:
	calls[client.call_method(method, request)] = what


func say(what: String, text: String, generation: Dictionary) -> void:
	step = what
	calls[client.chat(session_id, text, PackedByteArray(), generation)] = what


func _on_connected() -> void:
	if session_id == "":
		step = "CreateSession"
		call_rpc("create", "CreateSession", {"persona": PERSONA})
	else:
		step = "GetSession after the restart"
		call_rpc("history_restart", "GetSession", {"sessionId": session_id})


func _on_response(call_id, message) -> void:
	var what: String = calls.get(call_id, "")
	if what == "create":
		session_id = message["sessionId"]
		report("session", {"session_id": session_id})
		say("turn1", FIRST, {"maxTokens": max_tokens})
	elif what == "history_restart":
		history_after_restart = turns_of(message)
		report("history", {"after": "restart", "turns": history_after_restart})
		say("turn3", THIRD, {"maxTokens": max_tokens})
	elif what == "history_third":
		history_after_third = turns_of(message)
		report("history", {"after": "third turn", "turns": history_after_third})
		finish_crash()


func turns_of(session: Dictionary) -> Array:
	var out := []
	for turn in session.get("turns", []):
		out.append({"user": turn.get("user", ""), "reply": turn.get("reply", "")})
	return out


func _on_delta(call_id, text) -> void:
	if calls.get(call_id, "") != "turn2":
		return
	deltas += 1
	partial += text
	if killed_ms == 0:
		# The crash a game sees mid-conversation: the server dies while the reply streams.
		killed_ms = Time.get_ticks_msec()
		report("killing", {"pid": server.pid, "generation": server.generation})
		OS.kill(server.pid)
		step = "the launcher to bring the server back"


func _on_done(call_id, message) -> void:
	var what: String = calls.get(call_id, "")
	var reply: String = message.get("text", "")
	if what == "turn1":
		first_reply = reply
		report("turn", {"n": 1, "text": FIRST, "reply": reply, "finish": message.get("finishReason", "")})
		if mode == "hold":
			report("holding", {"pid": server.pid, "godot_pid": OS.get_process_id(), "address": server.address})
			step = "the test to kill this process"
			return
		say("turn2", STORY, {"maxTokens": 200, "maxSentences": 0})
	elif what == "turn2":
		fail("the long reply finished before the kill landed")
	elif what == "turn3":
		report("turn", {"n": 3, "text": THIRD, "reply": reply, "finish": message.get("finishReason", "")})
		step = "GetSession after the third turn"
		call_rpc("history_third", "GetSession", {"sessionId": session_id})


func _on_failed(call_id, code, message) -> void:
	fail("%s (%s) failed: %s %s" % [calls.get(call_id, "?"), call_id, code, message])


func _on_disconnected(_was_clean) -> void:
	if killed_ms > 0 and server.generation == 1:
		# The killed server took the connection with it: the streaming turn ends here, unfinished.
		report("turn_failed", {"n": 2, "why": "disconnected", "deltas": deltas, "partial": partial})
		client = null
		return
	if not finished:
		fail("the game's connection closed while waiting for " + step)


func _on_restarted(address: String) -> void:
	var back := describe(server)
	back["ms"] = Time.get_ticks_msec() - killed_ms
	report("back", back)
	connect_client(address)  # the restarted server's new port; the same key and session id


func finish_crash() -> void:
	var last_pid: int = server.pid
	client.close()
	client = null
	var how: String = server.stop()
	report("stop_result", {"how": how, "pids": [first_pid, last_pid]})
	if history_after_restart != [{"user": FIRST, "reply": first_reply}]:
		fail("after the restart the session does not hold exactly its first turn")
	elif history_after_third.size() != 2 or history_after_third[1]["user"] != THIRD:
		fail("the session did not take a new turn after the restart")
	elif how != "shutdown_rpc":
		fail("stop() did not end the server with the Shutdown RPC: " + how)
	else:
		pass_result()


func pass_result() -> void:
	report("result", {"ok": true, "why": ""})
	finished = true
	quit(0)


# ---- backoff: NPC_EXECUTABLE runs the bundle the first time and fails every later start ----------------------


func _on_backoff_ready(_address: String) -> void:
	report("ready", describe(server))
	report("killing", {"pid": server.pid, "generation": server.generation})
	OS.kill(server.pid)
	step = "six restarts"


func _on_backoff_restarting(_delay_s: float) -> void:
	restarts += 1
	if restarts == 6:
		report("stop_result", {"how": server.stop()})
		pass_result()


# ---- pair ----------------------------------------------------------------------------------------------------


func _on_pair_ready(address: String, name: String) -> void:
	pair_up[name] = describe(pair[name])
	report("ready", {"name": name, "address": address, "pid": pair[name].pid, "port": pair[name].port, "ws_port": pair[name].ws_port})
	if pair_up.size() < 2:
		return
	# a's key on b's server: each launch has its own key.
	step = "b's answer to a's key"
	client = NpcClient.new()
	client.api_key = pair["a"].api_key
	client.connected.connect(func(): calls[client.call_method("ListSessions", {})] = "cross")
	client.response.connect(func(_id, _message): pair_done("OK"))
	client.failed.connect(func(_id, code, _message): pair_done(code))
	client.connect_to(pair["b"].address)


func pair_done(cross_code: String) -> void:
	report("cross_key", {"code": cross_code})
	client.close()
	client = null
	var a_how: String = pair["a"].stop()
	report("stop_a", {"how": a_how})
	pair.erase("b")  # the last reference: the launcher stops its server as it is freed
	# Ended by now, while this game still runs (so not through --parent-pid). Godot 4.5+ logs an error for the pid,
	# which the launcher has reaped.
	report("dropped_b", {"running": OS.is_process_running(pair_up["b"]["pid"])})
	pass_result()


# ---- output --------------------------------------------------------------------------------------------------


func report(event: String, fields: Dictionary) -> void:
	var line := {"event": event}
	line.merge(fields)
	print(JSON.stringify(line))


func _env(name: String, default: String) -> String:
	var value := OS.get_environment(name)
	return value if value != "" else default


func fail(why: String) -> void:
	if finished:
		return
	finished = true
	report("result", {"ok": false, "why": why})
	printerr("ERROR " + why)
	quit(1)
