"""What the status bar and the reconnect message say, from a RigState built by hand."""

import time

from fieldtui.ui.screens.equipment import in_use_by
from fieldtui.ui.state import RigState
from fieldtui.ui.widgets.status import status_text


def _state(**kw):
    st = RigState()
    st.load({"clock": time.time(), "devices": {"guide_camera": {"state": "connected"}}})
    for k, v in kw.items():
        setattr(st, k, v)
    return st


def test_a_failed_activity_comes_first_with_its_reason():
    st = _state(activities={"guiding": {"name": "guiding", "state": "failed", "reason": "camera lost"}},
                alerts=[{"text": "older news", "level": "info"}])
    assert status_text(st, 200).endswith("! guiding failed: camera lost")


def test_service_gone_says_since_when_and_the_key():
    st = _state()
    st.connected = False
    st.lost_at = 1_800_000_000.0  # 2027-01-15 08:00 UTC
    assert status_text(st, 200) == " service not running since 08:00 UT — R starts it (retrying)"


def test_in_use_by_reads_the_lease_then_the_guider():
    st = _state()
    st.devices["guide_camera"]["holder"] = "loop:guide_camera"
    assert in_use_by(st, "guide_camera") == "loop:guide_camera"
    st.devices["guide_camera"]["holder"] = ""
    st.extra["guiding"] = {"state": "guiding"}
    assert in_use_by(st, "guide_port") == "guiding" and in_use_by(st, "focuser") == ""


def test_capture_and_stacking_show_progress_and_time_left():
    from fieldtui.ui.widgets.status import capture_text, stacking_text
    st = _state()
    assert capture_text(st) == "cap idle" and stacking_text(st) == ""
    now = st.now()
    st.extra["capture"] = {"plan": "m31", "planned": 30, "done": 3, "paused": False,
                           "current": {"type": "light", "index": 4, "exposure": 120.0, "started": now - 37.2}}
    st.activities["capture"] = {"name": "capture", "state": "running"}
    assert capture_text(st) == "cap 3/30 · frame 83 s left"  # 120 s frame begun 37 s ago
    st.extra["capture"].update(left_s=3725.0, at=now - 5.0)  # the plan's estimate, made 5 s ago
    assert capture_text(st) == "cap 3/30 · 1 h 02 left"
    st.extra["capture"].update(left_s=300.0)
    assert capture_text(st) == "cap 3/30 · 5 min left"
    st.extra["capture"]["paused"] = True
    assert capture_text(st) == "cap 3/30 paused"
    st.extra["stacking"] = {"state": "running", "current": {"name": "m31", "stage": "register", "done": 5,
                                                            "total": 16, "left_s": 12.4}}
    assert stacking_text(st) == "stack 5/16 · 12 s left"
    assert "cap 3/30 paused │ stack 5/16 · 12 s left" in status_text(st, 200)


def test_at_80_columns_the_alert_keeps_the_room():
    st = _state(alerts=[{"text": "star lost 3 times in 10 min; check clouds", "level": "warning"}])
    assert len(status_text(st, 200)) > 80
    st.extra["guiding"] = {"state": "guiding", "rms_total_arcsec": 0.77}
    st.extra["capture"] = {"planned": 30, "done": 3, "paused": True}
    st.activities["capture"] = {"name": "capture", "state": "running"}
    st.heartbeat["disk_free_gb"] = 120.0
    wide = status_text(st, 200)
    assert "UT │ guide guiding 0.77\" │ cap 3/30 paused │ disk 120G │ star lost" in wide
    narrow = status_text(st, 80)
    assert len(narrow) <= 79 and narrow.endswith("star lost 3 times in 10 min; check clouds")
    assert "│guiding 0.77\"│cap 3/30 paused│star" in narrow and "disk" not in narrow  # 120 GB: room to spare
    st.heartbeat["disk_free_gb"] = 4.0
    assert "│disk 4G│" in status_text(st, 80)
    tiny = status_text(st, 60)
    assert len(tiny) == 59 and tiny.endswith("…")
