# The scene sample on npc_client_godot3.gd (Godot 3.2+): two NPCs bicker about what is on screen, and the player
# cuts in (docs/scenes.md). The same flow and output as run_scene_godot4.gd, on Godot 3's API. Headless:
#   NPC_WS_URL=ws://127.0.0.1:PORT NPC_SCREENSHOT=shot.png godot3-server --path DIR -s run_scene_godot3.gd
# In a game, take the screenshot from the viewport instead (get_viewport().get_texture().get_data(), flip_y(),
# scaled to fit 448x256, save_png_to_buffer()) and show the lines in labels.
# Prints as it streams: "scene <id>: Brakka and Mirela", a "Name: text" line per NPC line, "Player: <line>",
# "(interrupted)" when the talk stops; exits 0, or 1 after ERROR <why>. Optional: NPC_API_KEY, NPC_TIMEOUT_S.
extends SceneTree

const NpcClient = preload("npc_client_godot3.gd")
const NPCS = [
	{"name": "Brakka", "description": "A gruff dwarven blacksmith who runs the forge in Emberfall."},
	{"name": "Mirela", "description": "The innkeeper of the Sleeping Griffin, who hears every rumour first."},
]
const TOPIC = "What is that out on the road? You two never agree about it."
const GENERATION = {"maxTokens": 24}

var npc
var screenshot := PoolByteArray()
var sessions := []  # the NPCs' session ids, in NPCS order
var scene_id := ""
var talk_id := ""  # the Converse call
var answer_id := ""  # the player's SceneChat call
var speaking := ""  # whose line is being printed
var ended := 0  # calls that ended (the talk, the answer)
var deadline_ms := 0
var finished := false


func _init():
	Engine.target_fps = 500  # poll every 2 ms; a headless loop would otherwise spin a core
	var timeout_s := OS.get_environment("NPC_TIMEOUT_S")
	deadline_ms = OS.get_ticks_msec() + (int(timeout_s) if timeout_s != "" else 120) * 1000
	var file := File.new()
	if file.open(OS.get_environment("NPC_SCREENSHOT"), File.READ) == OK:
		screenshot = file.get_buffer(file.get_len())
		file.close()
	npc = NpcClient.new()
	npc.api_key = OS.get_environment("NPC_API_KEY")
	npc.connect("connected", self, "_on_connected")
	npc.connect("response", self, "_on_response")
	npc.connect("scene_delta", self, "_on_delta")
	npc.connect("scene_done", self, "_on_done")
	npc.connect("scene_end", self, "_on_end")
	npc.connect("failed", self, "_on_failed")
	if screenshot.empty() or npc.connect_to(OS.get_environment("NPC_WS_URL")) != OK:
		_fail("set NPC_WS_URL to ws://HOST:PORT and NPC_SCREENSHOT to a PNG")


func _idle(_delta):
	if not finished:
		npc.poll()
		if OS.get_ticks_msec() > deadline_ms:
			_fail("timed out")
	return false


func _on_connected():
	npc.create_session(NPCS[0])


# 1. A session per NPC, then a scene of both: each hears what the other says.
func _on_response(_call_id, message):
	if message.has("sessionId"):
		sessions.append(message["sessionId"])
		if sessions.size() < NPCS.size():
			npc.create_session(NPCS[sessions.size()])
		else:
			npc.create_scene(sessions)
	elif message.has("sceneId"):
		scene_id = message["sceneId"]
		print("scene %s: Brakka and Mirela" % scene_id)
		# 2. They bicker about the screenshot: each line streams, with the speaker's name.
		talk_id = npc.converse(scene_id, 4, TOPIC, screenshot, GENERATION)


func _on_delta(_call_id, speaker, _session_id, text):
	if speaking != speaker:
		_end_line()
		printraw(speaker + ": ")
		speaking = speaker
	printraw(text)


func _on_done(call_id, speaker, _session_id, message):
	if speaking != speaker:  # a line that came without deltas
		_end_line()
		printraw(speaker + ": " + message["text"])
		speaking = speaker
	_end_line()
	if call_id == talk_id and answer_id == "":
		# 3. After the first line the player cuts in and asks the other one: the talk stops, that NPC answers.
		var line: String = ("Mirela" if speaker == "Brakka" else "Brakka") + ", what do you make of it?"
		print("Player: " + line)
		answer_id = npc.scene_chat(scene_id, line, PoolByteArray(), GENERATION)


func _on_end(call_id, interrupted):
	if call_id == talk_id and interrupted:
		_end_line()
		print("(interrupted)")
	ended += 1
	if ended == 2:  # the talk and the answer
		finished = true
		npc.close()
		quit(0)


func _on_failed(call_id, code, message):
	_fail("%s %s: %s" % [call_id, code, message])


func _end_line():
	if speaking != "":
		printraw("\n")
	speaking = ""


func _fail(why: String):
	if finished:
		return
	finished = true
	print("ERROR " + why)
	printerr("ERROR " + why)
	quit(1)
