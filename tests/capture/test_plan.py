"""Plans: parsing, one-line errors naming the entry, names, estimates, the template."""

import pytest

from fieldtui.capture.plan import (FRAME_PATTERN, PlanError, estimate, frame_name, parse_plan,
                                   resolve_target, template)

GOOD = """
[plan]
name = "test"
[[target]]
name = "Field"
ra_deg = 10.0
dec_deg = 20.0
[[target.sequence]]
type = "light"
count = 4
exposure = 60
iso = 800
dither_every = 2
[[target.sequence]]
type = "dark"
count = 3
"""


def test_parse_good_plan():
    p = parse_plan(GOOD, resolver=None)
    assert p.name == "test"
    (t,) = p.targets
    assert (t.name, t.ra_deg, t.dec_deg) == ("Field", 10.0, 20.0)
    light, dark = t.sequences
    assert (light.type, light.count, light.exposure, light.iso, light.dither_every) == ("light", 4, 60.0, 800, 2)
    assert (dark.type, dark.count, dark.exposure, dark.iso) == ("dark", 3, None, None)


@pytest.mark.parametrize("edit, message", [
    (("count = 4", "count = 0"), "target 1 (Field), sequence 1: count must be ≥ 1"),
    (("count = 4", "count = 2.5"), "target 1 (Field), sequence 1: count must be a whole number"),
    (('type = "dark"', 'type = "darks"'), "target 1 (Field), sequence 2: type must be one of"),
    (("exposure = 60\n", ""), "target 1 (Field), sequence 1: a light sequence needs an exposure"),
    (("iso = 800", "iso = 800\ngain = 100"), "sequence 1: give iso (a DSLR) or gain"),
    (("dec_deg = 20.0\n", ""), "target 1 (Field): give both ra_deg and dec_deg"),
    (("count = 3", "count = 3\ndither_every = 2"), "sequence 2: dither_every applies to lights only"),
    (("count = 3", "count = 3\nexposre = 2"), "sequence 2: unknown key 'exposre'"),
    (('name = "test"', 'name = "test"\npattern = "{nonsense}.fits"'), "[plan] pattern"),
    (("[plan]", "[plan"), "not valid TOML"),
])
def test_bad_plan_gets_one_line_naming_the_entry(edit, message):
    text = GOOD.replace(*edit, 1)
    with pytest.raises(PlanError) as exc:
        parse_plan(text, resolver=None)
    assert message in str(exc.value)
    assert "\n" not in str(exc.value)


def test_targets_by_name_from_openngc():
    pytest.importorskip("pyongc")
    ra, dec = resolve_target("M31")      # NGC 224: 00h42m44.35s +41°16'08.6"
    assert ra == pytest.approx((42 / 60 + 44.35 / 3600) * 15, abs=1e-6)
    assert dec == pytest.approx(41 + 16 / 60 + 8.6 / 3600, abs=1e-6)
    ra, dec = resolve_target("M42")      # south of the equator: 05h35m17s -05°23'28"
    assert -5.5 < dec < -5.3 and 83.7 < ra < 83.9
    with pytest.raises(PlanError, match="nor in the OpenNGC catalogue"):
        parse_plan(GOOD.replace("ra_deg = 10.0\ndec_deg = 20.0\n", "").replace("Field", "Nowhere42"))


def test_frame_name_default_pattern():
    assert frame_name(FRAME_PATTERN, night="2026-11-28", target="M 31", type="light", exposure=120.0,
                      iso=800, gain=None, temperature=12.6, seq=7) == \
        "2026-11-28/M_31/light/M_31_light_120s_ISO800_13C_0007.fits"
    assert frame_name(FRAME_PATTERN, night="n", target="T", type="bias", exposure=0.00025, iso=100,
                      gain=None, temperature=None, seq=1).endswith("T_bias_0.00025s_ISO100_naC_0001.fits")
    with pytest.raises(ValueError):
        frame_name("../{target}.fits", night="n", target="T", type="light", exposure=1, iso=1,
                   gain=None, temperature=1, seq=1)


def test_estimate_hand_computed():
    p = parse_plan(GOOD, resolver=None)
    e = estimate(p, frame_bytes=1000, overhead_s=2.0, dither_s=10.0)
    # lights: 4 × (60 + 2) + 1 dither (after frame 2; none after the last) × 10 = 258
    # darks take the lights' 60 s: 3 × 62 = 186
    assert [r["seconds"] for r in e["sequences"]] == [258.0, 186.0]
    assert e["seconds"] == 444.0 and e["bytes"] == 7000 and e["frames"] == 7


def test_template_parses_with_field_guide_defaults():
    p = parse_plan(template("M31", 10.68, 41.27), resolver=None)
    seqs = {s.type: s for s in p.targets[0].sequences}
    assert 10 <= seqs["light"].count <= 50
    assert all(seqs[k].count >= 10 for k in ("dark", "flat", "bias"))
