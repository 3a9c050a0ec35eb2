# npc-sdk client for Godot 3.2+ over the server's WebSocket gateway (npc-sdk serve --ws-port PORT).
# Protocol: docs/websocket.md. Messages are protobuf's JSON mapping of proto/npc/v1/npc.proto (camelCase
# names, int64 as strings, bytes as base64). Godot 4 twin: npc_client_godot4.gd.
#
#   var npc = preload("res://npc_client_godot3.gd").new()
#   npc.connect("delta", self, "_on_delta")            # (call_id, text): print it as it arrives
#   npc.connect_to("ws://127.0.0.1:50052")
#   func _process(_delta): npc.poll()                   # every frame
#   ... once "connected" fired: var id = npc.chat(session_id, "Hello!", png_bytes)
extends Reference

signal connected()
signal disconnected(was_clean)
signal response(call_id, message)  # a unary call's answer (Dictionary)
signal delta(call_id, text)  # Chat: the next piece of the reply
signal done(call_id, message)  # Chat: the Done message: text, finishReason, usage, timings, seen, emotion
# Chat: the player's line asked for one of the persona's declared actions; at most once, before the first delta.
# action: {"name": "ferry_across", "args": {"destination": "Mirewood"}, "confidence": 0.71}
signal action(call_id, requested)
signal failed(call_id, code, message)  # gRPC status name ("INVALID_ARGUMENT", "NOT_FOUND", ...) and message
# Scenes of several NPCs (docs/scenes.md): scene_chat and converse stream these, each naming the NPC (its persona's
# name and its session id); scene_end comes last, interrupted when a scene_chat (or a DeleteScene) cut the talk
# short. A cancel() ends the call with failed(call_id, "CANCELLED", ...) instead, as a Chat's.
signal scene_action(call_id, speaker, session_id, requested)
signal scene_delta(call_id, speaker, session_id, text)
signal scene_done(call_id, speaker, session_id, message)  # message: as done's
signal scene_end(call_id, interrupted)

var api_key := ""  # sent with every call when the server runs with --api-key
var _ws := WebSocketClient.new()
var _next_id := 0
var _open := false
var _interrupted := {}  # scene calls whose talk was cut short, until their end frame


func _init():
	_ws.connect("connection_established", self, "_on_established")
	_ws.connect("connection_error", self, "_on_closed", [false])
	_ws.connect("connection_closed", self, "_on_closed")
	_ws.connect("data_received", self, "_on_data")


func connect_to(url: String) -> int:
	# Buffers in KiB: the default 64 KiB output buffer cannot hold a screenshot frame; 4 MiB holds a ~3 MB PNG.
	_ws.set_buffers(1024, 4096, 4096, 256)
	return _ws.connect_to_url(url)


func poll() -> void:
	_ws.poll()


func close() -> void:
	_ws.disconnect_from_host()


func is_open() -> bool:
	return _open


# Any NpcService method by name ("GetSession", "ListSessions", ...); returns the call id answers carry.
func call_method(method: String, request: Dictionary) -> String:
	_next_id += 1
	var call_id := "c%d" % _next_id
	var frame := {"id": call_id, "method": method, "request": request}
	if api_key != "":
		frame["apiKey"] = api_key
	_send(frame)
	return call_id


func create_session(persona: Dictionary, session_id := "") -> String:
	var request := {"persona": persona}
	if session_id != "":
		request["sessionId"] = session_id
	return call_method("CreateSession", request)


# screenshot: PNG bytes (e.g. get_viewport().get_texture().get_data() then Image.save_png_to_buffer(),
# scaled to fit 448x256, the encoder's letterbox: 448x252 for 16:9); empty for none. generation: e.g. {"maxTokens": 60}.
# scene: what the game knows is in view (at most 32), merged with what the NPC sees in the screenshot:
# [{"tag": "ferryman", "name": "Old Tom the ferryman", "x": 0.2, "y": 0.6, "distance": 3.0}, {"tag": "slime"}]
# (only tag is required; x, y: 0..1 of the screen from the top left; distance in metres).
# state: game facts for this line (at most 16): {"player_health": "low", "quest_stage": "3"}.
func chat(session_id: String, text: String, png := PoolByteArray(), generation := {}, scene := [], state := {}) -> String:
	var request := {"sessionId": session_id, "text": text}
	if png.size() > 0:
		request["screenshot"] = {"data": Marshalls.raw_to_base64(png), "encoding": "PNG"}
	if not generation.empty():
		request["generation"] = generation
	if not scene.empty():
		request["scene"] = scene
	if not state.empty():
		request["state"] = state
	return call_method("Chat", request)


# A scene of 2-6 NPC sessions: every NPC in it hears what is said there. "response" gets the Scene: sceneId, members.
func create_scene(session_ids: Array, scene_id := "") -> String:
	var request := {"sessionIds": session_ids}
	if scene_id != "":
		request["sceneId"] = scene_id
	return call_method("CreateScene", request)


# The player's line to the scene: the NPC named in it answers (else the most relevant one); a talk in flight stops.
func scene_chat(scene_id: String, text: String, png := PoolByteArray(), generation := {}) -> String:
	var request := {"sceneId": scene_id, "text": text}
	return call_method("SceneChat", _with_shot(request, png, generation))


# The NPCs talk among themselves for `turns` lines (1-16) after `topic` (heard by all; may be empty).
func converse(scene_id: String, turns: int, topic := "", png := PoolByteArray(), generation := {}) -> String:
	var request := {"sceneId": scene_id, "turns": turns, "topic": topic}
	return call_method("Converse", _with_shot(request, png, generation))


func _with_shot(request: Dictionary, png: PoolByteArray, generation: Dictionary) -> Dictionary:
	if png.size() > 0:
		request["screenshot"] = {"data": Marshalls.raw_to_base64(png), "encoding": "PNG"}
	if not generation.empty():
		request["generation"] = generation
	return request


# Stops a Chat in flight: the server stores nothing of it; "failed" then fires with code CANCELLED.
func cancel(call_id: String) -> void:
	_send({"id": call_id, "cancel": true})


func _send(frame: Dictionary) -> int:
	var peer: WebSocketPeer = _ws.get_peer(1)
	peer.set_write_mode(WebSocketPeer.WRITE_MODE_TEXT)
	return peer.put_packet(JSON.print(frame).to_utf8())


func _on_established(_protocol: String) -> void:
	_open = true
	emit_signal("connected")


func _on_closed(was_clean := false) -> void:
	_open = false
	emit_signal("disconnected", was_clean)


func _on_data() -> void:
	var peer: WebSocketPeer = _ws.get_peer(1)
	while peer.get_available_packet_count() > 0:
		var parsed := JSON.parse(peer.get_packet().get_string_from_utf8())
		if parsed.error != OK or typeof(parsed.result) != TYPE_DICTIONARY:
			emit_signal("failed", "", "INTERNAL", "the gateway sent a frame that is not a JSON object")
			continue
		var frame: Dictionary = parsed.result
		var call_id = frame.get("id")
		if call_id == null:
			call_id = ""  # an error about a frame whose id could not be read
		if frame.has("event") and (frame["event"].has("event") or frame["event"].has("interrupted")):
			_on_scene_event(call_id, frame["event"])
		elif frame.has("end"):
			emit_signal("scene_end", call_id, _interrupted.get(call_id, false))
			_interrupted.erase(call_id)
		elif frame.has("event"):
			var event: Dictionary = frame["event"]
			if event.has("action"):
				emit_signal("action", call_id, _with_args(event["action"]))
			elif event.has("delta"):
				emit_signal("delta", call_id, event["delta"].get("text", ""))
			elif event.has("done"):
				emit_signal("done", call_id, _with_seen(event["done"]))
		elif frame.has("response"):
			emit_signal("response", call_id, frame["response"])
		elif frame.has("error"):
			var error: Dictionary = frame["error"]
			_interrupted.erase(call_id)
			emit_signal("failed", call_id, error.get("code", "UNKNOWN"), error.get("message", ""))


# A SceneEvent: {"sessionId": ..., "speaker": "Mira", "event": <a Chat event>}, or {"interrupted": true}.
func _on_scene_event(call_id: String, scene_event: Dictionary) -> void:
	if scene_event.get("interrupted", false):
		_interrupted[call_id] = true
		return
	var speaker: String = scene_event.get("speaker", "")
	var session_id: String = scene_event.get("sessionId", "")
	var event: Dictionary = scene_event["event"]
	if event.has("action"):
		emit_signal("scene_action", call_id, speaker, session_id, _with_args(event["action"]))
	elif event.has("delta"):
		emit_signal("scene_delta", call_id, speaker, session_id, event["delta"].get("text", ""))
	elif event.has("done"):
		emit_signal("scene_done", call_id, speaker, session_id, _with_seen(event["done"]))


# done["seen"]: what the NPC saw in the screenshot or was told by the game, most certain first, always present:
# [{"tag": "slime", "score": 0.93, "source": "screenshot"}, ...] (source "screenshot", "game" or "both").
# The JSON mapping leaves out empty lists and zero numbers; this puts them back.
func _with_args(message: Dictionary) -> Dictionary:
	message["args"] = message.get("args", {})
	message["confidence"] = float(message.get("confidence", 0.0))
	return message


# done["emotion"]: {"label": "joy", "intensity": 0.8}, for an emotion-to-animation hook, e.g.
# $AnimationPlayer.play("emotion_" + message["emotion"]["label"]).
func _with_seen(message: Dictionary) -> Dictionary:
	var emotion: Dictionary = message.get("emotion", {})
	emotion["label"] = emotion.get("label", "neutral")
	emotion["intensity"] = float(emotion.get("intensity", 0.0))
	message["emotion"] = emotion
	var seen: Array = message.get("seen", [])
	for tag in seen:
		tag["score"] = float(tag.get("score", 0.0))
		tag["source"] = tag.get("source", "")
	message["seen"] = seen
	return message
