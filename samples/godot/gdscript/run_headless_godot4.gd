# Headless check of npc_client_godot4.gd against a running server, as the tests run it:
#   NPC_WS_URL=ws://127.0.0.1:PORT NPC_SCREENSHOT=shot.png godot --headless --path DIR -s run_headless_godot4.gd
# (DIR holds a project.godot and both scripts.) Optional: NPC_LINE, NPC_API_KEY, NPC_MAX_TOKENS, NPC_TIMEOUT_S,
# NPC_SCENE (what the game says is in view, as the JSON of the request's scene: [{"tag": "slime", "x": 0.2}, ...]),
# NPC_CANCEL=1 (cancel the reply after its first delta: the client must then hear CANCELLED, and nothing is stored).
# Prints, one per line: ENGINE <Godot version>, SESSION <id>, DELTA <JSON string> per delta as it arrives,
# DONE <JSON string>, SEEN <JSON array of {tag, score, source}>, EMOTION <JSON>, TTFT_MS <ms from sending Chat to the
# first delta>, TOTAL_MS <ms to done> (or CANCELLED <code>); exits 0, or 1 after ERROR <why>.
extends SceneTree

const NpcClient = preload("npc_client_godot4.gd")
const PERSONA = {
	"name": "Brakka",
	"description": "A gruff dwarven blacksmith who runs the forge in Emberfall.",
	"greeting": "Hmph. Another traveller. Mind the anvil, it bites.",
	"roleWords": {"forge": 2.0},
}

var client
var chat_id := ""
var sent_us := 0
var first_us := -1
var deadline_ms := 0
var finished := false
var cancel_after_first := false


func _initialize():
	Engine.max_fps = 500  # poll every 2 ms; a headless loop would otherwise spin a core
	print("ENGINE " + Engine.get_version_info()["string"])
	client = NpcClient.new()
	client.api_key = OS.get_environment("NPC_API_KEY")
	client.connected.connect(_on_connected)
	client.disconnected.connect(_on_disconnected)
	client.response.connect(_on_response)
	client.delta.connect(_on_delta)
	client.done.connect(_on_done)
	client.action.connect(_on_action)
	client.failed.connect(_on_failed)
	cancel_after_first = OS.get_environment("NPC_CANCEL") == "1"
	var timeout_s := int(_env("NPC_TIMEOUT_S", "120"))
	deadline_ms = Time.get_ticks_msec() + timeout_s * 1000
	var url := OS.get_environment("NPC_WS_URL")
	if url == "":
		_fail("set NPC_WS_URL to ws://HOST:PORT")
	elif client.connect_to(url) != OK:
		_fail("cannot connect to " + url)


func _process(_delta: float) -> bool:
	if not finished:
		client.poll()
		if Time.get_ticks_msec() > deadline_ms:
			_fail("timed out")
	return false


func _env(name: String, default: String) -> String:
	var value := OS.get_environment(name)
	return value if value != "" else default


# A game starts the animation or the gameplay here, before the reply's text arrives.
func _on_action(_call_id, requested):
	print("ACTION " + JSON.stringify(requested))


func _on_connected():
	print("CONNECTED")
	client.create_session(PERSONA)


func _on_response(_call_id, session):
	print("SESSION " + session["sessionId"])
	var png := PackedByteArray()
	var path := OS.get_environment("NPC_SCREENSHOT")
	if path != "":
		png = FileAccess.get_file_as_bytes(path)
		if png.is_empty():
			_fail("cannot read " + path)
			return
	var scene := []
	var scene_json := OS.get_environment("NPC_SCENE")
	if scene_json != "":
		var parsed = JSON.parse_string(scene_json)
		if typeof(parsed) != TYPE_ARRAY:
			_fail("NPC_SCENE: not a JSON array: " + scene_json)
			return
		scene = parsed
	var line := _env("NPC_LINE", "What do you see out there?")
	var generation := {"maxTokens": int(_env("NPC_MAX_TOKENS", "40"))}
	sent_us = Time.get_ticks_usec()
	chat_id = client.chat(session["sessionId"], line, png, generation, scene)


func _on_delta(call_id, text):
	if call_id != chat_id:
		return
	if first_us < 0:
		first_us = Time.get_ticks_usec()
		if cancel_after_first:
			client.cancel(chat_id)
	print("DELTA " + JSON.stringify(text))


func _on_done(call_id, message):
	if call_id != chat_id:
		return
	if cancel_after_first:
		_fail("the reply finished although it was cancelled")
		return
	var end_us := Time.get_ticks_usec()
	print("DONE " + JSON.stringify(message.get("text", "")))
	print("SEEN " + JSON.stringify(message["seen"]))  # the client always fills it in ([] when nothing)
	print("EMOTION " + JSON.stringify(message["emotion"]))  # the hook a game maps to an animation
	print("TTFT_MS %.1f" % ((first_us - sent_us) / 1000.0))
	print("TOTAL_MS %.1f" % ((end_us - sent_us) / 1000.0))
	_finish()


func _on_failed(call_id, code, message):
	if cancel_after_first and call_id == chat_id and code == "CANCELLED":
		print("CANCELLED " + code)
		_finish()
		return
	_fail("%s %s: %s" % [call_id, code, message])


func _on_disconnected(_was_clean):
	if not finished:
		_fail("the connection closed")


func _finish():
	finished = true
	client.close()
	quit(0)


func _fail(why: String):
	if finished:
		return
	finished = true
	print("ERROR " + why)
	printerr("ERROR " + why)
	quit(1)
