# Headless check of npc_client_godot3.gd against a running server, as the tests run it:
#   NPC_WS_URL=ws://127.0.0.1:PORT NPC_SCREENSHOT=shot.png godot3-server --path DIR -s run_headless_godot3.gd
# (DIR holds a project.godot and both scripts.) Optional: NPC_LINE, NPC_API_KEY, NPC_MAX_TOKENS, NPC_TIMEOUT_S,
# NPC_SCENE (what the game says is in view, as the JSON of the request's scene: [{"tag": "slime", "x": 0.2}, ...]).
# Prints, one per line: SESSION <id>, DELTA <JSON string> per delta as it arrives, DONE <JSON string>,
# SEEN <JSON array of {tag, score, source}>, TTFT_MS <ms from sending Chat to the first delta>, TOTAL_MS <ms to done>;
# exits 0, or 1 after ERROR <why>.
extends SceneTree

const NpcClient = preload("npc_client_godot3.gd")
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


func _init():
	Engine.target_fps = 500  # poll every 2 ms; a headless loop would otherwise spin a core
	client = NpcClient.new()
	client.api_key = OS.get_environment("NPC_API_KEY")
	client.connect("connected", self, "_on_connected")
	client.connect("disconnected", self, "_on_disconnected")
	client.connect("response", self, "_on_response")
	client.connect("delta", self, "_on_delta")
	client.connect("done", self, "_on_done")
	client.connect("action", self, "_on_action")
	client.connect("failed", self, "_on_failed")
	var timeout_s := int(_env("NPC_TIMEOUT_S", "120"))
	deadline_ms = OS.get_ticks_msec() + timeout_s * 1000
	var url := OS.get_environment("NPC_WS_URL")
	if url == "":
		_fail("set NPC_WS_URL to ws://HOST:PORT")
	elif client.connect_to(url) != OK:
		_fail("cannot connect to " + url)


func _idle(_delta):
	if not finished:
		client.poll()
		if OS.get_ticks_msec() > deadline_ms:
			_fail("timed out")
	return false


func _env(name: String, default: String) -> String:
	var value := OS.get_environment(name)
	return value if value != "" else default


# A game starts the animation or the gameplay here, before the reply's text arrives.
func _on_action(_call_id, requested):
	print("ACTION " + JSON.print(requested))


func _on_connected():
	print("CONNECTED")
	client.create_session(PERSONA)


func _on_response(_call_id, session):
	print("SESSION " + session["sessionId"])
	var png := PoolByteArray()
	var path := OS.get_environment("NPC_SCREENSHOT")
	if path != "":
		var file := File.new()
		if file.open(path, File.READ) != OK:
			_fail("cannot read " + path)
			return
		png = file.get_buffer(file.get_len())
		file.close()
	var scene := []
	var scene_json := OS.get_environment("NPC_SCENE")
	if scene_json != "":
		var parsed := JSON.parse(scene_json)
		if parsed.error != OK or typeof(parsed.result) != TYPE_ARRAY:
			_fail("NPC_SCENE: not a JSON array: " + scene_json)
			return
		scene = parsed.result
	var line := _env("NPC_LINE", "What do you see out there?")
	var generation := {"maxTokens": int(_env("NPC_MAX_TOKENS", "40"))}
	sent_us = OS.get_ticks_usec()
	chat_id = client.chat(session["sessionId"], line, png, generation, scene)


func _on_delta(call_id, text):
	if call_id != chat_id:
		return
	if first_us < 0:
		first_us = OS.get_ticks_usec()
	print("DELTA " + JSON.print(text))


func _on_done(call_id, message):
	if call_id != chat_id:
		return
	var end_us := OS.get_ticks_usec()
	print("DONE " + JSON.print(message.get("text", "")))
	print("SEEN " + JSON.print(message["seen"]))  # the client always fills it in ([] when nothing)
	print("EMOTION " + JSON.print(message["emotion"]))  # the hook a game maps to an animation
	print("TTFT_MS %.1f" % ((first_us - sent_us) / 1000.0))
	print("TOTAL_MS %.1f" % ((end_us - sent_us) / 1000.0))
	finished = true
	client.close()
	quit(0)


func _on_failed(call_id, code, message):
	_fail("%s %s: %s" % [call_id, code, message])


func _on_disconnected(_was_clean):
	if not finished:
		_fail("the connection closed")


func _fail(why: String):
	if finished:
		return
	finished = true
	print("ERROR " + why)
	printerr("ERROR " + why)
	quit(1)
