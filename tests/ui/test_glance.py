"""What the user sees at a glance: a confirmation over the screen it is about, the time left of
long work, the age of old data, a stop while settling that sticks."""

import html
import re

from fieldtui.ui.app import FieldApp
from fieldtui.ui.screens.dialogs import ConfirmScreen

from .conftest import wait_until
from .nightcheck import bad_svg_colours


def svg_text(svg: str) -> str:
    """The characters of a Textual SVG screenshot, in order."""
    return html.unescape(" ".join(re.findall(r"<text[^>]*>([^<]*)</text>", svg))).replace("\xa0", " ")


async def test_a_confirmation_shows_over_the_screen_it_is_about():
    app = FieldApp()  # (no service: the Equipment screen says so behind the question)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.3)
        behind = svg_text(app.export_screenshot())
        assert "EQUIPMENT" in behind and "what it answered" in behind
        await pilot.press("t")
        assert await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.pause(0.3)
        svg = app.export_screenshot()
        text = svg_text(svg)
        assert "Switch to the day theme?" in text and "y: yes" in text
        # the screen behind stays in view (it went blank before): its title, table and keys
        for part in ("EQUIPMENT", "what it answered", "Before the first light", "Quit"):
            assert part in text, part
        assert not bad_svg_colours(svg)  # still only reds on black at night
        await pilot.press("n")
        assert await wait_until(pilot, lambda: not isinstance(app.screen, ConfirmScreen))
        assert app.theme == "fieldtui-night"
