"""The capture engine: plans, file names and the calibration rules (pure code).

- :mod:`.plan`: plans in TOML (targets, sequences), validation, estimates,
  templates with the field guide's defaults, the file-name pattern;
- :mod:`.calibration`: the field guide's rules for darks, flats, biases and
  dark flats, as pure functions returning a state per rule;
- :mod:`.quality`: light-frame outliers against the running median.

Nothing here touches hardware, files or the clock; the sequencer
(:mod:`fieldtui.service.capture`) runs a plan on the rig.
"""
