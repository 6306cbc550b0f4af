"""Every screen in a real terminal (tmux): a 16-colour terminal at night never draws red on
red nor bold, and at 80x24 nothing that matters is cut."""

import asyncio
import re
import shutil
import time

import pytest

from fieldtui.service import protocol
from fieldtui.service.client import RigClient

from .conftest import wait_for
from .nightcheck import cells, same_colour_cells
from .test_tmux import Tmux

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")

SCREENS = (("e", "EQUIPMENT"), ("f", "FOCUS"), ("g", "GUIDING"), ("c", "CAPTURE"), ("k", "CALIBRATION"),
           ("s", "STACKING"))


async def _command(name, **args):
    c = RigClient(protocol.socket_path())
    await c.connect()
    try:
        return await c.command(name, timeout=120, **args)
    finally:
        await c.close()


def command(name, **args):
    return asyncio.run(_command(name, **args))


def _tmux(service_process, term):
    env = {k: v for k, v in service_process.items() if k != "COLORTERM"}
    env["TERM"] = term
    return Tmux(env)


@pytest.fixture
def tmux16(service_process):
    t = _tmux(service_process, "xterm")  # PuTTY's default: 16 colours
    yield t
    t.kill_server()


@pytest.fixture
def tmux256(service_process):
    t = _tmux(service_process, "xterm-256color")
    yield t
    t.kill_server()


def check_16_colours(text, where):
    assert not same_colour_cells(text), (where, same_colour_cells(text)[:10])
    seen_fg, seen_attrs = set(), set()
    for row in cells(text):
        for ch, f, b, attrs in row:
            if not ch.strip():
                continue
            seen_fg.add(f)
            seen_attrs |= attrs
            assert "bold" not in attrs, (where, ch)  # bold red is pink on the Linux console
            assert f in (0, 1), (where, ch, f, b)  # ANSI black or red only (no bright colours)
            assert b in (0, 1), (where, ch, f, b)
    return seen_fg, seen_attrs


def test_16_colour_night_never_red_on_red(tmux16):
    tmux16.start_client("c", {"TERM": "xterm"})
    command("loop.start", camera="guide_camera", exposure=0.5)
    command("focus.start", camera="main_camera")
    seen_attrs = set()
    reversed_cells = 0
    for key, title in SCREENS:
        tmux16("send-keys", "-t", "c", key)
        assert wait_for(lambda: title in tmux16.screen("c")), tmux16.screen("c")
        time.sleep(2.5 if key == "f" else 0.5)
        text = tmux16.screen("c", colours=True)
        _, attrs = check_16_colours(text, title)
        seen_attrs |= attrs
        reversed_cells += sum(1 for row in cells(text) for ch, f, b, _ in row if b == 1 and ch.strip())
        if key == "f":  # the live view draws stars with glyphs, not five reds that became one
            assert re.search("[░▒▓█]", tmux16.screen("c")), tmux16.screen("c")
    # the states stay apart: the highlighted row reversed, keys underlined, dim things faint
    assert reversed_cells > 10 and "underline" in seen_attrs, seen_attrs
    # a confirmation and the help screen too
    tmux16("send-keys", "-t", "c", "t")
    assert wait_for(lambda: "y: yes" in tmux16.screen("c")), tmux16.screen("c")
    check_16_colours(tmux16.screen("c", colours=True), "confirm")
    tmux16("send-keys", "-t", "c", "n")
    assert wait_for(lambda: "y: yes" not in tmux16.screen("c"))
    tmux16("send-keys", "-t", "c", "?")
    assert wait_for(lambda: "every key of this screen" in tmux16.screen("c")), tmux16.screen("c")
    check_16_colours(tmux16.screen("c", colours=True), "help")
    command("focus.stop")


def _unwrapped(screen_text):
    """The screen's text with its lines joined (what wraps is still there, what is cut is not)."""
    return re.sub(r"\s+", " ", screen_text.replace("│", " ").replace("╮", " ").replace("╭", " "))


def test_80x24_nothing_that_matters_is_cut(tmux256):
    t = tmux256
    t.start_client("c", {"TERM": "xterm-256color"})
    screen = lambda: t.screen("c")  # noqa: E731
    # Equipment after a check: the highlighted device's whole answer shows below the table.
    t("send-keys", "-t", "c", "r")
    assert wait_for(lambda: "check: " in screen(), timeout=60), screen()
    res = command("check")
    guide = next(c for c in res["checks"] if c["name"] == "guide_camera")
    model_part = guide["detail"].split(";")[0]  # the test frame's figures change from check to check
    text = screen()
    assert model_part in _unwrapped(text), text
    for key in ("r Check", "x Reconn", "q Quit", "? Help"):
        assert key in text, (key, text)
    for item in ("Caps off", "Camera set to RAW", "Balance re-checked with camera"):
        assert item in text
    # Guiding: the title's hint whole, every key that applies in the key bar.
    t("send-keys", "-t", "c", "g")
    command("guide.loop")
    assert wait_for(lambda: "GUIDING · looping" in screen()), screen()
    text = screen()
    assert "a star · r cal · u guide" in text.splitlines()[0], text
    for key in ("a Star", "r Cal", "u Guide", "-+ Scale", "<> Min"):
        assert key in text, (key, text)
    # Focus: the test exposure's advice whole (it wraps), the histogram tall enough for 4 channels.
    t("send-keys", "-t", "c", "f")
    assert wait_for(lambda: "FOCUS" in screen())
    command("focus.test_exposure", exposure=5.0)
    assert wait_for(lambda: "clip" in screen(), timeout=30), screen()
    time.sleep(1.0)
    test = command("focus.state")["test"]
    text = screen()
    flat = _unwrapped(text)
    for advice in test["advice"]:
        first_words = " ".join(advice.split()[:8])
        assert first_words in flat, (advice, text)
    hist_rows = [ln for ln in text.splitlines() if "┤" in ln and ln.index("┤") > 30]
    assert len(text.splitlines()) == 24
    for key in ("l Loop", "x Test", "h Log/Lin", "q Quit"):
        assert key in text, (key, text)
    # the key bar is never covered by a message: the message line is its own
    assert "test exposure" in text or "clip" in text
    assert hist_rows or "R G1 G2 B" in text
