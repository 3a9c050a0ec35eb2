# npc-sdk: the bundled server (`npc-sdk bundle`) as a child process of a Godot 4.3+ game: started, watched,
# restarted after a crash, stopped when the game quits (docs/server.md, "Launching the server from a game"; the C++
# npc::ServerProcess and Unity NpcServerProcess do the same).
#
#   const NpcServerProcess = preload("res://npc_server_process.gd")
#   var server := NpcServerProcess.new()
#   server.ready.connect(_on_server_up)        # address: "ws://127.0.0.1:N", for npc_client_godot4.gd
#   server.restarted.connect(_on_server_up)    # after a crash: a new port; make a new client, same session ids
#   server.start()                             # returns at once; "ready" fires within seconds
#   func _process(_delta): server.poll()       # every frame: reads its output, watches it, restarts it
#   func _on_server_up(address): npc = NpcClient.new(); npc.api_key = server.api_key; npc.connect_to(address)
#   func _notification(what): if what == NOTIFICATION_WM_CLOSE_REQUEST: server.stop()
#
# start() runs `<bundle>/npc-server --port 0 --ws-port 0 --parent-pid <this game> --data-dir D --threads N --nice N`
# with OS.execute_with_pipe, with a fresh key (32 hex characters) in the child's environment only: NPC_SDK_API_KEY
# is set in the game's environment just for the start and taken out again, so it never shows on a command line. It
# reads the child's stdout and stderr every poll() (only the bytes already there: a frame never waits on the pipe,
# and the pipe never fills) until the JSON ready line {"ready": true, "port": N, "ws_port": W, ...}, then checks
# health: a ListPersonas call with the key through the WebSocket gateway (the gRPC health service is not reachable
# from GDScript), and only then emits "ready". Health is checked again every health_interval_s; after
# unhealthy_after failures in a row the child is killed and restarted. A child that ends without stop() is started
# again with the same data dir (sessions survive) on new ports, after 0.5 s, 1 s, 2 s, ... up to 8 s (back to
# 0.5 s once a child ran healthy_after_s). stop() sends the Shutdown RPC with the key (replies in flight finish, the
# store is flushed) and OS.kill()s the child if it has not ended after shutdown_grace_s; it blocks that long at
# most. If the game crashes, the server notices through --parent-pid and stops by itself.
#
# Godot 4.3+ (OS.execute_with_pipe); run under Godot 4.6 on Linux in CI (tests/clients/test_godot_launcher.py).
# The server speaks gRPC and, with --ws-port, the WebSocket gateway GDScript uses; gRPC's port is `port`.
extends RefCounted

const NpcClient = preload("npc_client_godot4.gd")
const API_KEY_ENV := "NPC_SDK_API_KEY"
const TAIL_LINES := 20  # the child's last lines, kept for a failed start's message
const REFUSED := ["UNAUTHENTICATED", "PERMISSION_DENIED"]  # a Shutdown RPC the server will not obey

signal ready(address)  # the first start is up: it printed its ready line and answered a call with the key
signal restarted(address)  # after a crash or a failed health check: a new child is up, on new ports
signal stopped()  # stop() ended the child
# The child ended without stop(); a restart follows. exit_code: -1 when unknown, and 0 for a child the game itself
# ended with OS.kill() (Godot reaps it there, and its status is lost).
signal exited(exit_code)
signal restarting(delay_s)  # the next start comes after delay_s
signal start_failed(message)  # a start gave no ready line or no answer: why, and the child's last lines
signal unhealthy(message)  # a health check failed
signal log_line(line)  # every line of the child's stdout and stderr but the ready line

enum State { IDLE, LAUNCHING, CHECKING, UP, WAITING, STOPPED }

# ---- what to start (read by start() and by every restart) ----
var executable := ""  # an absolute path: the bundle's npc-server; "": default_executable()
var base_arguments := PackedStringArray()  # before the launcher's own, e.g. ["-m", "npc_sdk.cli", "serve"] for python
var extra_arguments := PackedStringArray()  # after them, e.g. ["--personas", "<folder>"]
var data_dir := ""  # --data-dir: the save folder, kept across restarts; "": user://npc-sdk
var threads := 1  # --threads N, onnxruntime threads per graph (0: not passed, all cores)
var niceness := 10  # --nice N, a lower OS priority so the game's threads come first (0: not passed)

# ---- supervision ----
var restart := true  # start the server again when it ends without stop()
var ready_timeout_s := 120.0  # from the start to the ready line
var first_backoff_s := 0.5
var max_backoff_s := 8.0
var healthy_after_s := 30.0  # a child that ran this long resets the backoff
var health_interval_s := 5.0  # 0: only the check before "ready"
var health_timeout_s := 20.0  # a busy machine answers slowly; a dead one not at all
var unhealthy_after := 3  # failed checks in a row before the child is killed and restarted (0: only report)
var shutdown_grace_s := 10.0  # stop(): after the Shutdown RPC, before OS.kill

# ---- the running server (read-only) ----
var api_key := ""  # for NpcClient.api_key: made fresh by each start()
var address := ""  # "ws://127.0.0.1:W" while up, "" otherwise
var port := 0  # the gRPC port, 0 while down
var ws_port := 0  # the WebSocket gateway's port, 0 while down
var pid := -1  # the child's process id while it runs, -1 otherwise
var generation := 0  # 1 once the first child was up, +1 for each restart
var last_error := ""  # why the last start failed

var _state := State.IDLE
var _stdio: FileAccess
var _stderr: FileAccess
var _out := PackedByteArray()
var _err := PackedByteArray()
var _tail: Array[String] = []
var _launched_ms := 0
var _up_ms := 0
var _delay_s := 0.5
var _restart_at_ms := 0
var _client = null  # NpcClient to the child, for health and Shutdown
var _health_id := ""
var _health_sent_ms := 0
var _next_health_ms := 0
var _failed_checks := 0
var _connect_ms := 0
var _exit = null  # the child's exit code once it has ended (-1: unknown), null while it runs


func _notification(what: int) -> void:
	if what != NOTIFICATION_PREDELETE or pid <= 0 or _exit != null:
		return
	# The game dropped the launcher without stop(). Only member variables and static functions still work here
	# (this object's methods and signals are gone), so the static part of stop() ends the child.
	_end_child(pid, _client, ws_port, api_key, shutdown_grace_s, Callable())
	if _client != null:
		_client.close()
	if _stdio != null:
		_stdio.close()
	if _stderr != null:
		_stderr.close()


func _running() -> bool:
	return _state in [State.LAUNCHING, State.CHECKING, State.UP]


func state_name() -> String:
	return State.keys()[_state]


func is_up() -> bool:
	return _state == State.UP


# <folder of the game's executable>/npc-server/npc-server(.exe) in an exported game (a bundle cannot run from
# inside the .pck: ship it beside the executable), res://npc-server/npc-server when run from the editor.
static func default_executable() -> String:
	var name := "npc-server.exe" if OS.get_name() == "Windows" else "npc-server"
	if OS.has_feature("editor") or not OS.has_feature("template"):
		return ProjectSettings.globalize_path("res://npc-server").path_join(name)
	return OS.get_executable_path().get_base_dir().path_join("npc-server").path_join(name)


# A fresh key: 16 random bytes from the OS's generator, as 32 hex characters.
static func make_api_key() -> String:
	return Crypto.new().generate_random_bytes(16).hex_encode()


# Starts the server; OK when a child was started ("ready" or "start_failed" follows in poll()), an error when the
# executable cannot be run. Each start() makes a new key.
func start() -> Error:
	if _state in [State.LAUNCHING, State.CHECKING, State.UP, State.WAITING]:
		return ERR_ALREADY_IN_USE
	var exe := _executable()
	if not FileAccess.file_exists(exe):
		last_error = "no server executable at " + exe + " (npc-sdk bundle --out <that folder>)"
		return ERR_FILE_NOT_FOUND
	api_key = make_api_key()
	generation = 0
	_delay_s = first_backoff_s
	return _launch()


# Call every frame (from _process): reads the child's output, watches it, checks health, restarts it.
func poll() -> void:
	match _state:
		State.LAUNCHING, State.CHECKING, State.UP:
			_read_output()  # (a bad ready line, or a log_line handler's stop(), ends the child here)
			if not _running():
				return
			var code = _ended()
			if code != null:
				_on_child_ended(code)
				return
			var client = _client  # held here: a signal handler may drop _client while it polls
			if client != null:
				client.poll()
			if _running():
				_check()
		State.WAITING:
			if Time.get_ticks_msec() >= _restart_at_ms:
				_launch()  # a failure schedules the next try


# Stops the server: the Shutdown RPC with the key, then OS.kill after shutdown_grace_s. Blocks until the child has
# ended (shutdown_grace_s at most). Returns how: "shutdown_rpc", "kill", "already_exited" or "not_running".
func stop() -> String:
	var was := _state
	_state = State.STOPPED
	if not (was in [State.LAUNCHING, State.CHECKING, State.UP]):  # (not _running(): _state is STOPPED now)
		if was == State.WAITING:
			stopped.emit()
		return "not_running"
	var how := "already_exited"
	if _ended() == null:
		how = _end_child(pid, _client, ws_port, api_key, shutdown_grace_s, _read_output)
		_exit = -1  # reaped by now: Godot must not be asked about this pid again
	_read_output()
	_close_child()
	stopped.emit()
	return how


# Ends process `child`: the Shutdown RPC with `key` through `client` (a new one to port `ws` when null), then
# OS.kill after grace_s; `drain` (if valid) is called meanwhile to read the child's output. Static, so that it also
# runs from NOTIFICATION_PREDELETE.
static func _end_child(child: int, client, ws: int, key: String, grace_s: float, drain: Callable) -> String:
	if client == null and ws > 0:
		client = NpcClient.new()
		client.api_key = key
		client.connect_to("ws://127.0.0.1:%d" % ws)
	var deadline := Time.get_ticks_msec() + int(grace_s * 1000)
	var call := {"id": "", "refused": false}  # a Dictionary: a lambda sees a local variable by value only
	if client != null:
		client.failed.connect(
			func(call_id, code, _message):
				call["refused"] = call["refused"] or (call_id == call["id"] and code in REFUSED)
		)
	while client != null and not call["refused"] and Time.get_ticks_msec() < deadline:
		if drain.is_valid():
			drain.call()
		if _exit_code_of(child) != null:
			return "shutdown_rpc" if call["id"] != "" else "already_exited"
		client.poll()
		if call["id"] == "" and client.is_open():
			call["id"] = client.call_method("Shutdown", {})
		OS.delay_msec(10)
	if _exit_code_of(child) != null:
		return "shutdown_rpc" if call["id"] != "" else "already_exited"
	OS.kill(child)  # no port yet (still loading), the key refused, or the grace ran out
	return "kill"


func _executable() -> String:
	return executable if executable != "" else default_executable()


func _arguments() -> PackedStringArray:
	var args := PackedStringArray(base_arguments)
	args.append_array(["--port", "0", "--ws-port", "0", "--parent-pid", str(OS.get_process_id())])
	var folder := data_dir if data_dir != "" else ProjectSettings.globalize_path("user://npc-sdk")
	args.append_array(["--data-dir", folder])
	if threads > 0:
		args.append_array(["--threads", str(threads)])
	if niceness > 0:
		args.append_array(["--nice", str(niceness)])
	args.append_array(extra_arguments)
	return args


func _launch() -> Error:
	_close_child()
	_tail.clear()
	# The key goes to the child through the environment it inherits, and is taken out of the game's right after.
	var had := OS.has_environment(API_KEY_ENV)
	var before := OS.get_environment(API_KEY_ENV)
	OS.set_environment(API_KEY_ENV, api_key)
	var info := OS.execute_with_pipe(_executable(), _arguments())
	if had:
		OS.set_environment(API_KEY_ENV, before)
	else:
		OS.unset_environment(API_KEY_ENV)
	if info.is_empty():
		_after_failed_start("cannot run " + _executable())
		return FAILED
	pid = int(info["pid"])
	_exit = null
	_stdio = info["stdio"]
	_stderr = info["stderr"]
	_launched_ms = Time.get_ticks_msec()
	_state = State.LAUNCHING
	return OK


# The exit code once the child has ended (-1 when unknown), null while it runs. Asked once more after that, Godot
# 4.5+ prints an error (the pid is reaped): the answer is kept in _exit.
func _ended():
	if pid <= 0:
		return -1
	if _exit == null:
		_exit = _exit_code_of(pid)
	return _exit


static func _exit_code_of(child: int):
	var code := OS.get_process_exit_code(child)  # -1 while it runs
	if code != -1:
		return code
	return null if OS.is_process_running(child) else -1


func _kill() -> void:
	OS.kill(pid)  # reaps it, too
	_exit = -1


func _read_output() -> void:
	if _stdio != null:
		_out = _drain(_stdio, _out, true)
	if _stderr != null:
		_err = _drain(_stderr, _err, false)


# Reads what the pipe holds (never more, so it never blocks) and handles each complete line.
func _drain(pipe: FileAccess, pending: PackedByteArray, is_stdout: bool) -> PackedByteArray:
	var available := pipe.get_length()
	if available <= 0:
		return pending
	pending.append_array(pipe.get_buffer(available))
	var end := pending.find(10)  # "\n"
	while end >= 0:
		var line := pending.slice(0, end).get_string_from_utf8().trim_suffix("\r")
		pending = pending.slice(end + 1)
		_on_line(line, is_stdout)
		end = pending.find(10)
	return pending


func _on_line(line: String, is_stdout: bool) -> void:
	if is_stdout and _state == State.LAUNCHING and line.begins_with("{"):
		var parsed = JSON.parse_string(line)
		if typeof(parsed) == TYPE_DICTIONARY and parsed.get("ready") == true:
			_on_ready_line(parsed)
			return
	_tail.append(line)
	if _tail.size() > TAIL_LINES:
		_tail.pop_front()
	log_line.emit(line)


func _on_ready_line(line: Dictionary) -> void:
	port = int(line.get("port", 0))
	ws_port = int(line.get("ws_port", 0))
	if ws_port <= 0:
		_fail_start("the ready line names no ws_port: the server has no WebSocket gateway (npc-sdk too old?)")
		return
	_state = State.CHECKING
	_connect_client()
	_next_health_ms = 0


func _connect_client() -> void:
	_drop_client()
	_client = NpcClient.new()
	_client.api_key = api_key
	_client.response.connect(_on_response)
	_client.failed.connect(_on_failed)
	_client.disconnected.connect(_on_disconnected)
	_connect_ms = Time.get_ticks_msec()
	_client.connect_to("ws://127.0.0.1:%d" % ws_port)


func _drop_client() -> void:
	if _client != null:
		_client.close()
		_client = null
	_health_id = ""


func _check() -> void:
	var now := Time.get_ticks_msec()
	if _state == State.LAUNCHING:
		if now - _launched_ms > int(ready_timeout_s * 1000):
			_fail_start("no ready line within %d s" % int(ready_timeout_s))
		return
	if _health_id != "":
		if now - _health_sent_ms > int(health_timeout_s * 1000):
			_health_failed("DEADLINE_EXCEEDED: no answer within %d s" % int(health_timeout_s))
		return
	if now < _next_health_ms or (_state == State.UP and health_interval_s <= 0):
		return
	if _client == null:
		_connect_client()  # a lost connection is made again for the next check
	elif _client.is_open():
		_health_sent_ms = now
		_health_id = _client.call_method("ListPersonas", {})
	elif now - _connect_ms > int(health_timeout_s * 1000):
		_health_failed("the WebSocket gateway on port %d did not open" % ws_port)


func _on_response(call_id, _message) -> void:
	if call_id != _health_id or not (_state in [State.CHECKING, State.UP]):
		return
	_health_id = ""
	_failed_checks = 0
	_next_health_ms = Time.get_ticks_msec() + int(health_interval_s * 1000)
	if _state == State.CHECKING:
		_state = State.UP
		_up_ms = Time.get_ticks_msec()
		generation += 1
		address = "ws://127.0.0.1:%d" % ws_port
		if generation == 1:
			ready.emit(address)
		else:
			restarted.emit(address)


func _on_failed(call_id, code, message) -> void:
	if call_id == _health_id and _state in [State.CHECKING, State.UP]:
		_health_failed("%s: %s" % [code, message])


func _on_disconnected(_was_clean) -> void:
	if not (_state in [State.CHECKING, State.UP]):
		return
	var pending := _health_id != ""
	_client = null  # closed; the next check connects again
	_health_id = ""
	if pending or _state == State.CHECKING:
		_health_failed("the WebSocket connection closed")


func _health_failed(why: String) -> void:
	_health_id = ""
	if _state == State.CHECKING:
		_fail_start("health check: " + why)
		return
	_failed_checks += 1
	_next_health_ms = Time.get_ticks_msec() + int(health_interval_s * 1000)
	unhealthy.emit(why)
	if unhealthy_after > 0 and _failed_checks >= unhealthy_after and _state == State.UP:
		_kill()  # seen as ended at the next poll(), then restarted as any crash


# A start that gave no ready line or no answer: the child is killed; a restart is tried again after the backoff.
func _fail_start(why: String) -> void:
	if _ended() == null:
		_kill()
	_state = State.STOPPED  # for now: what is left to read is only logged
	_read_output()
	_close_child()
	_after_failed_start(why)


func _after_failed_start(why: String) -> void:
	last_error = why
	for line in _tail:
		last_error += "\n  " + line
	var retry := generation > 0 and restart  # the first start: the caller sees why and decides (start() again)
	_state = State.WAITING if retry else State.STOPPED
	start_failed.emit(last_error)
	if retry and _state == State.WAITING:  # (a handler may have called stop())
		_schedule_restart()


func _on_child_ended(code) -> void:
	var was := _state
	_state = State.STOPPED  # for now: what is left to read is only logged
	_read_output()
	_close_child()
	if was != State.UP:
		_after_failed_start("the server ended before it took calls (exit code %d)" % code)
		return
	if Time.get_ticks_msec() - _up_ms >= int(healthy_after_s * 1000):
		_delay_s = first_backoff_s
	_state = State.WAITING if restart else State.STOPPED
	exited.emit(code)
	if _state == State.WAITING:  # (a handler may have called stop())
		_schedule_restart()


func _schedule_restart() -> void:
	_state = State.WAITING
	restarting.emit(_delay_s)
	_restart_at_ms = Time.get_ticks_msec() + int(_delay_s * 1000)
	_delay_s = minf(_delay_s * 2.0, max_backoff_s)


func _close_child() -> void:
	_drop_client()
	if _stdio != null:
		_stdio.close()
	if _stderr != null:
		_stderr.close()
	_stdio = null
	_stderr = null
	_out = PackedByteArray()
	_err = PackedByteArray()
	pid = -1
	port = 0
	ws_port = 0
	address = ""
	_failed_checks = 0
