import os
import signal
import subprocess
import sys

import pytest

from fieldtui.atomic import write_bytes, write_with


def test_a_failed_write_leaves_the_old_file_and_no_leftovers(tmp_path):
    p = tmp_path / "frame.dng"
    write_bytes(p, b"finished frame")

    def half(fh):
        fh.write(b"half a fr")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        write_with(p, half)
    assert p.read_bytes() == b"finished frame"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["frame.dng"]


def test_a_kill_mid_write_leaves_finished_files_intact(tmp_path):
    code = f"""
import sys, time
sys.path.insert(0, {str(os.path.dirname(os.path.dirname(__file__)))!r})
from fieldtui.atomic import write_bytes, write_with
write_bytes({str(tmp_path / 'done.bin')!r}, b"x" * 1000)
def slow(fh):
    fh.write(b"y" * 500)
    fh.flush()
    print("writing", flush=True)
    time.sleep(30)
write_with({str(tmp_path / 'done.bin')!r}, slow)
"""
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (tmp_path / "done.bin").read_bytes() == b"x" * 1000


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_written_files_keep_the_users_umask(tmp_path, mask, expected):
    old = os.umask(mask)
    try:
        p = write_bytes(tmp_path / "light.fits", b"frame")
    finally:
        os.umask(old)
    assert p.stat().st_mode & 0o777 == expected
