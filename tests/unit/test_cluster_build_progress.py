"""The cluster build's progress lines say how long a cold build of each step takes."""

from __future__ import annotations

from heartbeat_localstack.cluster import build


def test_every_built_step_has_a_cold_estimate() -> None:
    steps = (*build.CONTROL_PLANE_STEPS, *build.NODE_STEPS)
    assert sorted(steps) == sorted(build.COLD_SECONDS)


def test_a_long_step_is_estimated_in_minutes_and_a_short_one_in_seconds() -> None:
    assert build.cold_estimate("kube-apiserver") == "about 3 min when cold; "
    assert build.cold_estimate("kube-scheduler") == "about 4 s when cold; "


def test_an_unknown_step_gets_no_estimate() -> None:
    assert build.cold_estimate("pause-source") == ""


def test_the_whole_build_is_estimated_from_its_steps() -> None:
    assert build._minutes(build.CONTROL_PLANE_STEPS) == "about 7 min"
    assert build._minutes(build.NODE_STEPS) == "about 4 min"
