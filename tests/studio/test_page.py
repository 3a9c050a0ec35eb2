"""The studio page in a real browser: Debian's headless Chromium driven by Selenium, over a real `npc-sdk serve
--studio` on loopback with the real int4 model. One server and one browser for the module; each test loads the
page afresh and makes its own sessions, so none depends on another: load the page, break a persona and see the
error at its line, fix and save it and chat, drop a screenshot and see its tags, trigger an action, regenerate,
compare, export and import a session; and other origins and paths outside the persona folder refused.

NPC_SDK_STUDIO_SCREENSHOTS=docs/studio writes the screenshots docs/studio.md shows."""

from __future__ import annotations

import functools
import http.server
import io
import os
import re
import shutil
import threading
from pathlib import Path

import pytest

from npc_sdk._proto.npc.v1 import npc_pb2 as pb
from npc_sdk.client import Client

from ..engine_tools import require_browser
from ..server_process import ServerProcess

pytestmark = pytest.mark.slow

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "personas"
API_KEY = "studio-test-key-0123456789"
WAIT_S = 90  # a turn on two busy cores takes seconds; a page action far less
SHOTS = os.environ.get("NPC_SDK_STUDIO_SCREENSHOTS", "")


@pytest.fixture(scope="module")
def personas(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("personas")
    for name in ("brakka.toml", "villager.toml"):
        shutil.copy(SAMPLES / name, folder / name)
    shutil.copy(SAMPLES / "brakka.toml", folder / "smith.toml")  # the one the save test changes
    return folder


@pytest.fixture(scope="module")
def server(exported_int4, personas, tmp_path_factory):
    data = tmp_path_factory.mktemp("data")
    extra = ("--studio", "--studio-port", "0", "--personas", str(personas), "--slots", "4")
    with ServerProcess(exported_int4, data, *extra, env={"NPC_SDK_API_KEY": API_KEY}) as proc:
        yield proc


@pytest.fixture(scope="module")
def downloads(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def browser(downloads):
    chromium, chromedriver = require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1440,900"):
        options.add_argument(arg)
    options.add_experimental_option(
        "prefs", {"download.default_directory": str(downloads), "download.prompt_for_download": False}
    )
    driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    driver.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
    )
    driver.set_script_timeout(WAIT_S)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def client(server):
    with Client(server.address, api_key=API_KEY) as c:
        yield c


def url(server) -> str:
    return f"http://127.0.0.1:{server.studio_port}/"


def wait(driver, predicate, timeout: float = WAIT_S, what: str = ""):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda d: predicate(d), what)


def css(driver, selector: str):
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, selector)


def one(driver, selector: str):
    found = css(driver, selector)
    assert found, f"nothing matches {selector}"
    return found[0]


def shot(driver, name: str) -> None:
    """With NPC_SDK_STUDIO_SCREENSHOTS set, the page as it looks now, in 256 colours (a tenth of the bytes)."""
    if SHOTS:
        from PIL import Image

        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        picture = Image.open(io.BytesIO(driver.get_screenshot_as_png())).convert("RGB")
        picture.quantize(256).save(Path(SHOTS) / f"{name}.png", optimize=True)


def tab(driver, name: str) -> None:
    one(driver, f'#tabs [data-tab="{name}"]').click()
    wait(driver, lambda d: one(d, f"#tab-{name}").is_displayed())


def load(driver, server, name: str = "persona") -> None:
    """The page loaded afresh on tab `name`, ready (the key entered if the page asks for it)."""
    driver.get("about:blank")
    driver.get(url(server) + "#" + name)

    def settled(d):
        if d.execute_script("return document.body.dataset.ready") == "1":
            return True
        if one(d, "#key-dialog").get_attribute("open") is not None:
            one(d, "#key-input").send_keys(API_KEY)
            one(d, "#key-ok").click()
        return False

    wait(driver, settled, what="the page ready")
    wait(driver, lambda d: d.execute_script("return !!window.studio.editor.file"), what="a file open")


def new_session(driver, persona: str = "brakka") -> str:
    from selenium.webdriver.support.ui import Select

    tab(driver, "chat")
    wait(
        driver,
        lambda d: css(d, f'#chat-persona option[value="{persona}"]'),
        what=f"persona {persona} offered",
    )
    Select(one(driver, "#chat-persona")).select_by_value(persona)
    one(driver, "#new-session").click()
    wait(driver, lambda d: d.execute_script("return window.studio.chat.sessionId"), what="a new session")
    return driver.execute_script("return window.studio.chat.sessionId")


def say(driver, line: str) -> dict:
    """Send a line from the chat tab and wait for its reply to finish; the page's timing of it."""
    before = len(css(driver, "#transcript .npc .meta"))
    box = one(driver, "#line")
    box.send_keys(line)
    one(driver, "#send").click()
    wait(driver, lambda d: len(css(d, "#transcript .npc .meta")) > before, what=f"the reply to {line!r}")
    return driver.execute_script("return window.studio.chat.timings.at(-1)")


def page_call(driver, method: str, request: dict) -> dict:
    """One call through the page's own socket: {"response": ...} or {"code": ..., "message": ...}."""
    return driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "window.studio.rpc.call(arguments[0], arguments[1])"
        ".then((r) => done({response: r}), (e) => done({code: e.code, message: e.message}));",
        method,
        request,
    )


# ---- the page --------------------------------------------------------------------------------------------------


def test_the_page_loads_asks_for_the_servers_key_and_opens_the_persona_folder(server, browser):
    browser.get(url(server))
    browser.execute_script("sessionStorage.clear()")
    browser.get("about:blank")
    browser.get(url(server))
    wait(browser, lambda d: one(d, "#key-dialog").get_attribute("open") is not None, what="the key dialog")
    assert not browser.execute_script("return document.body.dataset.ready")  # nothing works without the key
    one(browser, "#key-input").send_keys(API_KEY)
    one(browser, "#key-ok").click()
    wait(
        browser,
        lambda d: d.execute_script("return document.body.dataset.ready") == "1",
        what="the page ready",
    )
    assert one(browser, "#connection").text == "connected"
    names = [b.get_attribute("data-name") for b in css(browser, "#file-list button")]
    assert names == ["brakka.toml", "smith.toml", "villager.toml"]
    assert one(browser, "#file-name").text == "brakka.toml"
    wait(browser, lambda d: "valid: persona brakka" in one(d, "#problems").text)
    wait(browser, lambda d: "Persona block" in one(d, "#budgets").text)
    budgets = one(browser, "#budgets").text
    assert "of 3072 tokens" in budgets and "<|im_start|>system" in one(browser, "#render-prompt").text


def _type_at_line_2(browser, text: str) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    source = one(browser, "#source")
    source.click()
    ActionChains(browser).key_down(Keys.CONTROL).send_keys(Keys.HOME).key_up(Keys.CONTROL).perform()
    source.send_keys(Keys.END, Keys.ENTER, text)


def test_an_error_typed_into_a_persona_shows_at_its_line(server, browser):
    load(browser, server)
    wait(browser, lambda d: "valid: persona brakka" in one(d, "#problems").text)
    _type_at_line_2(browser, "mood = 3")  # line 2: a field personas do not have
    wait(browser, lambda d: css(d, '#gutter [data-line="2"].bad'), what="line 2 marked")
    [problem] = css(browser, "#problems li")
    assert problem.text.startswith("brakka.toml:2: persona.mood: unknown field")
    assert problem.get_attribute("data-line") == "2"
    assert len(css(browser, "#gutter .bad")) == 1
    assert one(browser, "#file-state").text == "edited, not saved"
    shot(browser, "persona-error")


def test_a_fixed_persona_is_saved_reloaded_by_the_server_and_a_reply_streams(server, browser, client):
    from selenium.webdriver.common.keys import Keys

    load(browser, server)
    one(browser, '#file-list [data-name="smith.toml"]').click()
    wait(browser, lambda d: "valid: persona smith" in one(d, "#problems").text, what="smith.toml open")
    _type_at_line_2(browser, "mood = 3")
    wait(browser, lambda d: css(d, '#gutter [data-line="2"].bad'), what="the error shown")
    one(browser, "#source").send_keys(
        Keys.BACKSPACE * len("mood = 3"), 'post_history = "Keep it short, lad."'
    )
    wait(browser, lambda d: "valid: persona smith" in one(d, "#problems").text, what="the fix accepted")
    assert not css(browser, "#gutter .bad")
    one(browser, "#save-file").click()
    wait(browser, lambda d: "The server reloaded smith" in one(d, "#reload-state").text, what="the reload")
    live = client.stub.GetPersona(pb.GetPersonaRequest(id="smith"), metadata=client.metadata)
    assert live.post_history == "Keep it short, lad."
    shot(browser, "persona")

    new_session(browser, "smith")
    one(browser, "#gen-seed").send_keys("7")
    timing = say(browser, "Hello there!")
    reply = css(browser, "#transcript .npc .text")[-1].text
    assert reply.strip() and timing["firstTextAt"] is not None  # text arrived as deltas before the done
    assert timing["sentAt"] < timing["firstTextAt"] <= timing["doneAt"]
    # the new session runs the saved version: its post-history note was told before the line
    wait(browser, lambda d: "Keep it short, lad." in one(d, '#why [data-part="told"]').text)


DROP = """
const done = arguments[arguments.length - 1];
fetch("/scenes/" + arguments[0]).then((r) => r.blob()).then((blob) => {
  const files = new DataTransfer();
  files.items.add(new File([blob], arguments[0], {type: "image/png"}));
  document.getElementById("drop").dispatchEvent(new DragEvent("drop", {dataTransfer: files, bubbles: true}));
  done(true);
});
"""

HEAT_AT_HOTTEST_CELL = """
const heat = window.studio.scene.heat, cells = heat.tags[arguments[0]].cells;
const best = cells.indexOf(Math.max(...cells));
const [r, c] = [Math.floor(best / heat.cols), best % heat.cols];
const canvas = document.getElementById("picture-heat"), ctx = canvas.getContext("2d");
const [x0, y0, x1, y1] = heat.box;
const x = Math.floor(((c + 0.5) * 16 - x0) * canvas.width / (x1 - x0));
const y = Math.floor(((r + 0.5) * 16 - y0) * canvas.height / (y1 - y0));
return [ctx.getImageData(x, y, 1, 1).data[3], ctx.getImageData(1, 1, 1, 1).data[3]];
"""


def _drop(browser, scene: str) -> None:
    browser.execute_async_script(DROP, scene)
    wait(browser, lambda d: scene in one(d, "#drop").text, what="the dropped picture")


def _add_entity(browser, *values: str) -> None:
    one(browser, "#add-entity").click()
    for cell, value in zip(css(browser, "#scene-table tbody tr:last-child input"), values, strict=False):
        cell.send_keys(value)


def test_a_dropped_sample_screenshot_has_the_tags_seen_drawn_over_it(server, browser):
    from selenium.webdriver.support.ui import Select

    load(browser, server, "chat")
    new_session(browser)
    one(browser, '[data-scene="lava_cave_key.png"]').click()  # a sample scene picked, then replaced by a drop
    wait(browser, lambda d: "lava_cave_key.png" in one(d, "#drop").text, what="the sample picked")
    _drop(browser, "meadow_slimes.png")
    _add_entity(browser, "ferryman", "Old Tom", "0.8", "0.6")
    one(browser, "#add-state").click()
    key, value = css(browser, "#state-table tbody tr:last-child input")
    key.send_keys("time_of_day")
    value.send_keys("dusk")
    say(browser, "What is that over there?")
    tags = {t.get_attribute("data-tag"): t.text for t in css(browser, "#picture-tags .legend .tag")}
    assert re.fullmatch(r"slime [01]\.\d\d", tags.get("slime", "")), tags  # with the head's score
    assert "ferryman" in tags  # the game's entity, as the NPC was told of it
    marker = one(browser, '#picture-tags .marker[data-tag="ferryman"]')
    assert marker.text == "Old Tom"
    picture = one(browser, "#picture").rect
    assert marker.rect["x"] > picture["x"] + picture["width"] / 2  # x = 0.8: drawn on the right half
    assert "In view:" in one(browser, '#why [data-part="scene"]').text
    assert "time of day: dusk" in one(browser, '#why [data-part="game"]').text
    # the heat map: the grounding head's cells for a tag, drawn where it sees it
    wait(browser, lambda d: one(d, "#heat-row").is_displayed(), what="the heat map's choices")
    Select(one(browser, "#heat-tag")).select_by_value("slime")
    hottest, corner = browser.execute_script(HEAT_AT_HOTTEST_CELL, "slime")
    assert hottest > 100 and corner == 0
    assert one(browser, '#picture-tags .tag[data-tag="slime"]').get_attribute("aria-pressed") == "true"


def test_an_action_is_shown_as_it_comes_and_explained(server, browser):
    load(browser, server, "chat")
    new_session(browser)
    _drop(browser, "meadow_slimes.png")
    _add_entity(browser, "ferryman", "Old Tom", "0.8", "0.6")
    say(browser, "What is that over there?")
    say(browser, "Can you sharpen my sword?")
    event = one(browser, '#transcript .event.action[data-action="sharpen_weapon"]')
    assert "confidence" in event.text
    items = css(browser, "#transcript > li")
    assert items.index(event) == len(items) - 2  # it comes before the reply it belongs to
    why = one(browser, '#why [data-part="action"]').text
    assert "sharpen_weapon" in why and "best not fired" in why and "open_shop" in why
    lore = one(browser, '#why [data-part="lore"]').text
    assert "sword" in lore and "reforges blades" in lore  # the lore entry and the key that fired it
    assert len(css(browser, '#why [data-part="emotion"] tr')) == 7
    assert css(browser, '#why [data-part="biased"] .pill.role')
    shot(browser, "chat")


def test_regenerate_says_the_last_line_again_in_its_place(server, browser, client):
    load(browser, server, "chat")
    sid = new_session(browser)
    one(browser, "#gen-seed").send_keys("7")
    say(browser, "Hello there!")
    say(browser, "What do you know about the old mine?")
    lines = [li.text for li in css(browser, "#transcript .player")]
    assert len(client.get_session(sid).turns) == len(lines) == 2
    one(browser, "#regenerate").click()
    wait(
        browser,
        lambda d: d.execute_script(
            "const c = window.studio.chat; return !c.busy && c.turns.length === 2 && !!c.turns.at(-1).done"
        ),
        what="the regenerated reply",
    )
    assert [li.text for li in css(browser, "#transcript .player")] == lines
    assert one(browser, "#gen-seed").get_attribute("value") == "8"  # the seed moved on by one
    stored = client.get_session(sid).turns
    assert [t.user for t in stored] == lines
    assert stored[-1].reply == css(browser, "#transcript .npc .text")[-1].text


def test_compare_runs_two_seeds_side_by_side(server, browser):
    from selenium.webdriver.support.ui import Select

    load(browser, server, "compare")
    box = one(browser, "#compare-lines")
    box.clear()
    box.send_keys("Hello there!")
    wait(browser, lambda d: css(d, '#compare-b-persona option[value="brakka"]'), what="the personas offered")
    Select(one(browser, "#compare-a-persona")).select_by_value("brakka")
    Select(one(browser, "#compare-b-persona")).select_by_value("brakka")
    one(browser, "#compare-run").click()
    wait(browser, lambda d: one(d, "#compare-run").is_enabled(), what="both sides done")
    a, b = (one(browser, f"#compare-table tbody td.{side}").text for side in "ab")
    assert a.strip() and b.strip() and "…" not in a + b
    assert not re.match(r"[A-Z_]+: ", a) and not re.match(r"[A-Z_]+: ", b)  # an error would read "CODE: why"
    shot(browser, "compare")


def test_a_session_is_exported_and_imported_back(server, browser, downloads, client):
    sid = client.create_session_from_file("brakka").session_id
    client.say(sid, "Hello there!", max_tokens=12)
    client.say(sid, "What is that over there?", max_tokens=12)
    load(browser, server, "sessions")
    row = f'#session-table tr[data-session="{sid}"]'
    wait(browser, lambda d: css(d, row), what="the session listed")
    one(browser, f'{row} [data-do="export"]').click()
    saved = downloads / f"{sid}.npc-session.json"
    wait(browser, lambda d: saved.is_file() and saved.stat().st_size > 0, what="the export downloaded")
    delete = one(browser, f'{row} [data-do="delete"]')
    delete.click()
    delete.click()  # the first click arms it
    wait(browser, lambda d: not css(d, row), what="the session deleted")
    assert sid not in {s.session_id for s in client.list_sessions().sessions}
    one(browser, "#import-session").send_keys(str(saved))
    wait(browser, lambda d: css(d, row), what="the session imported")
    assert f"imported {sid} (2 turns)" in one(browser, "#sessions-state").text
    assert [t.user for t in client.get_session(sid).turns] == ["Hello there!", "What is that over there?"]
    shot(browser, "sessions")


def test_a_path_outside_the_persona_folder_is_refused(server, browser, personas):
    load(browser, server)
    (personas.parent / "outside.toml").write_text('name = "Outside"\n')
    for name in ("../outside.toml", str(personas.parent / "outside.toml")):
        answer = page_call(browser, "ReadFile", {"name": name})
        assert answer.get("code") == "PERMISSION_DENIED", answer
        assert "persona folder" in answer["message"]
    answer = page_call(
        browser, "SaveFile", {"name": "../planted.toml", "text": 'name = "X"', "overwrite": True}
    )
    assert answer.get("code") == "PERMISSION_DENIED" and not (personas.parent / "planted.toml").exists()


def test_a_page_from_another_origin_is_refused(server, browser, tmp_path):
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    ws = f"ws://127.0.0.1:{server.studio_port}/ws"
    with pytest.raises(InvalidStatus) as err:
        connect(ws, origin="http://evil.example").close()
    assert err.value.response.status_code == 403
    with connect(ws, origin=f"http://127.0.0.1:{server.studio_port}") as own:  # the page's own origin
        own.send('{"id": "1", "method": "ListFiles"}')
        assert '"UNAUTHENTICATED"' in own.recv(timeout=WAIT_S)  # and still needs the key
    # a real page on another origin (another port of loopback) trying the studio's socket
    (tmp_path / "other.html").write_text(
        f"<script>const ws = new WebSocket('{ws}');"
        "ws.onopen = () => { document.title = 'opened'; };"
        "ws.onclose = (e) => { if (document.title !== 'opened') document.title = 'refused ' + e.code; };"
        "</script>"
    )
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    other = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    try:
        browser.get(f"http://127.0.0.1:{other.server_address[1]}/other.html")
        wait(browser, lambda d: d.title.startswith(("refused", "opened")), what="the socket's fate")
        assert browser.title == "refused 1006"
    finally:
        other.shutdown()
