# npc-sdk: captures training pictures for the NPC's image head while the game runs (Godot 4; docs/training.md,
# "Bring your own pictures"). Add it as a Node to a scene. Every `interval` seconds, or on F9, it saves
# the viewport as user://npc_dataset/images/NNNN.png and appends one line to <split>.jsonl:
#   {"file": "0001.png", "tags": ["slime", "gem"], "boxes": [{"tag": "slime", "box": [x0, y0, x1, y1]}]}
# for the visible nodes in `group` that carry a tag: metadata "npc_tag" (Inspector > Add Metadata, or
# set_meta("npc_tag", "slime")) or a property npc_tag. Boxes are in pixels from the top left: a 2D node's rect (or its
# Sprite2D children's) through its canvas transform, a 3D node's AABB (or its VisualInstance3D children's)
# projected by the camera. dataset.json lists the tags. Not run here: no Godot 4 on this machine (README.md).
extends Node

@export var folder := "user://npc_dataset"
@export var interval := 2.0  ## seconds between pictures; 0: only on the key
@export var capture_action := ""  ## an InputMap action that takes a picture; empty: the F9 key
## test: the pictures `npc-sdk eval --split test` measures; take them somewhere else than the training ones
@export_enum("train", "val", "test") var split := "train"
@export var group := "npc_tag"
@export var scene_tags := {}  ## tags of every picture taken here, tag -> kind: {"night": "time", "snow": "terrain"}
@export var min_box_pixels := 8.0  ## smaller boxes are left out, and so is their tag
@export var max_pictures := 5000

var _next := 1
var _vocabulary := {}  # dataset.json's "tags": kept across sessions, so edited "words" stay
var _busy := false


func _ready() -> void:
	DirAccess.make_dir_recursive_absolute(folder + "/images")
	for file in DirAccess.get_files_at(folder + "/images"):  # go on after the pictures already there
		if file.get_basename().is_valid_int():
			_next = maxi(_next, file.get_basename().to_int() + 1)
	if FileAccess.file_exists(folder + "/dataset.json"):
		var meta = JSON.parse_string(FileAccess.get_file_as_string(folder + "/dataset.json"))
		if meta is Dictionary and meta.get("tags") is Dictionary:
			_vocabulary = meta["tags"]
	if interval > 0.0:
		var timer := Timer.new()
		timer.wait_time = interval
		timer.timeout.connect(capture)
		add_child(timer)
		timer.start()
	print("npc-sdk: capturing %s pictures into %s" % [split, ProjectSettings.globalize_path(folder)])


func _unhandled_input(event: InputEvent) -> void:
	if capture_action != "" and event.is_action_pressed(capture_action):
		capture()
	elif capture_action == "" and event is InputEventKey and event.pressed and not event.echo:
		if event.keycode == KEY_F9:
			capture()


func capture() -> void:
	if _busy or _next > max_pictures:
		return
	_busy = true
	await RenderingServer.frame_post_draw  # the frame is drawn: read it back
	var image := get_viewport().get_texture().get_image()
	var file := "%04d.png" % _next
	image.save_png(folder + "/images/" + file)
	var pixels := Vector2(image.get_size())
	var scale := pixels / get_viewport().get_visible_rect().size  # canvas units -> pixels (content scale)
	var tags: Array = scene_tags.keys()
	var boxes := []
	for tag in scene_tags:
		_remember(tag, scene_tags[tag])
	for node in get_tree().get_nodes_in_group(group):
		var tag := str(node.get("npc_tag") if node.get("npc_tag") != null else node.get_meta("npc_tag", ""))
		var rect := _canvas_rect(node)
		rect = Rect2(rect.position * scale, rect.size * scale).intersection(Rect2(Vector2.ZERO, pixels))
		if tag == "" or rect.size.x < min_box_pixels or rect.size.y < min_box_pixels:
			continue
		if not tags.has(tag):
			tags.append(tag)
		_remember(tag, node.get_meta("npc_kind", ""))
		var box := [floori(rect.position.x), floori(rect.position.y), ceili(rect.end.x), ceili(rect.end.y)]
		boxes.append({"tag": tag, "box": box})
	var path := folder + "/" + split + ".jsonl"
	var jsonl := FileAccess.open(path, FileAccess.READ_WRITE if FileAccess.file_exists(path) else FileAccess.WRITE)
	jsonl.seek_end()
	jsonl.store_line(JSON.stringify({"file": file, "tags": tags, "boxes": boxes}))
	jsonl.close()
	var meta := FileAccess.open(folder + "/dataset.json", FileAccess.WRITE)
	meta.store_string(JSON.stringify({"tags": _vocabulary}, " ") + "\n")
	meta.close()
	_next += 1
	_busy = false


# dataset.json entry: kind from metadata "npc_kind" (thing, terrain or time), else what it was, else "thing".
# Words are left to the trainer (the tag and its plural) unless added to the file by hand.
func _remember(tag: String, kind: String) -> void:
	var entry: Dictionary = _vocabulary.get(tag, {})
	if kind != "" or not entry.has("kind"):
		entry["kind"] = kind if kind != "" else "thing"
	_vocabulary[tag] = entry


# A node's box in canvas units; Rect2() when hidden or partly behind the camera.
func _canvas_rect(node: Node) -> Rect2:
	var camera := get_viewport().get_camera_3d()
	var parts: Array = [node]
	if node is Node2D and not node.has_method("get_rect"):
		parts = node.find_children("*", "Sprite2D", true, false)
	elif node is Node3D and not (node is VisualInstance3D):
		parts = node.find_children("*", "VisualInstance3D", true, false)
	var rect := Rect2()
	var first := true
	for part in parts:
		if not (part is CanvasItem or part is Node3D) or not part.is_visible_in_tree():
			continue
		var box := Rect2()
		if part is Control:
			box = part.get_global_transform_with_canvas() * Rect2(Vector2.ZERO, part.size)
		elif part is CanvasItem and part.has_method("get_rect"):
			box = part.get_global_transform_with_canvas() * part.get_rect()
		elif part is VisualInstance3D and camera != null:
			var aabb: AABB = part.global_transform * part.get_aabb()
			for i in 8:
				if camera.is_position_behind(aabb.get_endpoint(i)):
					return Rect2()
				var point := camera.unproject_position(aabb.get_endpoint(i))
				box = Rect2(point, Vector2.ZERO) if i == 0 else box.expand(point)
		else:
			continue
		rect = box if first else rect.merge(box)
		first = false
	return rect
