"""The rig service as a process: private socket, one per rig, stop says what it aborted."""

import asyncio
import os
import stat
import subprocess
import sys

from fieldtui.service import protocol
from fieldtui.service.client import RigClient


def run(*args, env, timeout=60):
    return subprocess.run([sys.executable, "-m", "fieldtui", *args], capture_output=True, text=True,
                          env=env, timeout=timeout)


def test_socket_and_folder_belong_to_the_user_alone(service_process, runtime):
    sock = runtime / "rig.sock"
    assert stat.S_ISSOCK(sock.stat().st_mode)
    assert stat.S_IMODE(sock.stat().st_mode) == 0o600
    assert stat.S_IMODE(runtime.stat().st_mode) == 0o700
    assert sock.stat().st_uid == os.getuid()
    assert stat.S_IMODE((runtime / "rig.lock").stat().st_mode) == 0o600


def test_second_service_is_refused(service_process, config_file):
    r = run("service", "run", "--config", str(config_file), env=service_process)
    assert r.returncode == 1
    assert "a rig service is already running on this rig" in r.stderr
    assert "Traceback" not in r.stderr
    r = run("service", "start", env=service_process)
    assert r.returncode == 0 and "already running" in r.stdout


def test_status_and_stop_say_what_was_aborted(service_process):
    async def start_loop():
        c = RigClient(protocol.socket_path())
        await c.connect()
        await c.command("loop.start", camera="main_camera", exposure=0.5)
        await c.command("guide.loop")
        await c.close()

    asyncio.run(start_loop())
    r = run("service", "status", env=service_process)
    assert r.returncode == 0 and '"guide_camera": "connected"' in r.stdout
    r = run("service", "stop", env=service_process)
    assert r.returncode == 0
    assert "rig service stopped; aborted: " in r.stdout
    aborted = r.stdout.split("aborted: ")[1].strip().split(", ")
    assert sorted(aborted) == ["guiding", "loop:main_camera"]
    r = run("service", "status", env=service_process)
    assert r.returncode == 3 and "no rig service is running" in r.stdout


def test_a_bad_command_is_answered_not_fatal(service_process):
    async def go():
        c = RigClient(protocol.socket_path())
        await c.connect()
        try:
            await c.command("no.such.thing")
        except Exception as exc:  # noqa: BLE001
            err = str(exc)
        # A garbled line gets an error reply; the service keeps serving.
        c.writer.write(b"{not json\n")
        await c.writer.drain()
        pong = await c.command("ping")
        await c.close()
        return err, pong

    err, pong = asyncio.run(go())
    assert "unknown command 'no.such.thing'" in err
    assert "clock" in pong


def test_check_and_faults_go_through_the_running_service(service_process, config_file):
    import json
    r = run("check", "--json", "--config", str(config_file), env=service_process, timeout=120)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["via"] == "rig service" and out["ok"] is True
    assert str(config_file) in out["service_config"]
    assert "not used" not in out["service"]
    other = config_file.parent / "other.toml"
    other.write_text(config_file.read_text())
    r = run("check", "--config", str(other), env=service_process, timeout=120)
    first = r.stdout.splitlines()[0]
    assert first.startswith("talking to the running rig service (pid ")
    assert str(config_file) in first and f"--config {other} is not used" in first
    r = run("fault", "focuser", "garbage", env=service_process)
    assert r.returncode == 0 and "garbage on focuser" in r.stdout
    r = run("fault", "mount", "disconnect", env=service_process)
    assert r.returncode == 0
    r = run("check", "--json", env=service_process, timeout=120)
    assert r.returncode == 1
    mount = next(c for c in json.loads(r.stdout)["checks"] if c["name"] == "mount")
    assert mount["ok"] is False and mount["fix"]
    r = run("fault", "sky", "clear", env=service_process)
    assert r.returncode == 0
