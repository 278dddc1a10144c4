"""Reopening a camera that failed: the waits between attempts, asked of the worker, not timed."""
import pytest

from conftest import wait_for


@pytest.fixture
def waits(fake_camera, monkeypatch):
    """The delays the worker asks to wait before each reopening (returning at once), and after how many
    the source answers again: set ``waits.recover_after``."""
    class Waits(list):
        recover_after = None
    asked = Waits()

    def no_signal(error, delay):
        asked.append(delay)
        if len(asked) == asked.recover_after:
            fake_camera.source.fail_open = fake_camera.source.fail_read = None

    monkeypatch.setattr(fake_camera, "_no_signal", no_signal)
    return asked


def first_live_frame(camera):
    stream = camera.frames()
    try:
        return next(frame for frame in stream if frame.live)
    finally:
        stream.close()


def test_a_source_that_stays_away_is_tried_every_second_after_a_short_start(fake_camera, fake_source, waits):
    fake_source.fail_open = "no such device"
    waits.recover_after = 7
    assert first_live_frame(fake_camera)
    assert waits == [0.25, 0.5, 1.0, 1.0, 1.0, 1.0, 1.0]
    assert fake_source.opens == 1                  # the attempts that failed opened nothing


def test_the_waits_start_short_again_after_a_frame(fake_camera, fake_source, waits):
    fake_source.fail_open = "no such device"
    waits.recover_after = 4
    assert first_live_frame(fake_camera)
    fake_source.fail_read = "unplugged"            # a second outage, after frames came
    waits.recover_after = 6
    assert wait_for(lambda: len(waits) == 6)
    assert waits == [0.25, 0.5, 1.0, 1.0, 0.25, 0.5]


def test_a_camera_that_opens_but_delivers_nothing_backs_off_too(fake_camera, fake_source, waits):
    fake_source.fail_read = "select() timeout"
    waits.recover_after = 5
    assert first_live_frame(fake_camera)
    assert waits == [0.25, 0.5, 1.0, 1.0, 1.0]
    assert fake_source.opens == 6                   # each attempt opened and closed it


def test_each_outage_is_counted_once_however_many_attempts_it_takes(fake_camera, fake_source, monkeypatch):
    attempts = []
    real_open = fake_source.open
    monkeypatch.setattr(fake_source, "open", lambda: attempts.append(1) or real_open())
    fake_source.fail_open = "no such device"
    stream = fake_camera.frames()
    assert not next(stream).live
    assert wait_for(lambda: len(attempts) >= 3)
    fake_source.fail_open = None
    assert wait_for(lambda: next(stream).live)
    fake_source.fail_read = "unplugged"
    assert wait_for(lambda: not next(stream).live)
    fake_source.fail_read = None
    assert wait_for(lambda: next(stream).live)
    stream.close()
    assert fake_camera.outages == 2
