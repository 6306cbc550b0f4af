"""The check's CPU line: overheating fails, a busy machine only warns."""

from fieldtui.service.check import cpu_check


def test_overheating_fails_with_a_fix():
    c = cpu_check(0.5, 2, 90.0)
    assert not c.ok and "overheating" in c.fix and "90 °C" in c.detail


def test_a_busy_machine_passes_with_a_warning():
    c = cpu_check(12.0, 2, 60.0)
    assert c.ok and "busy" in c.detail and "load 12.00 on 2 cores" in c.detail


def test_an_idle_cool_machine_passes_without_a_warning():
    c = cpu_check(0.3, 4, None)
    assert c.ok and "busy" not in c.detail and "temperature not readable" in c.detail
