import threading

import gevent
import pytest

from camera_server.capture.hub import Frame, FrameHub
from conftest import parse_part


def frame(seq):
    return Frame.build(seq, 1000.0 + seq, None, b"\xff\xd8jpeg%d\xff\xd9" % seq)


def test_part_carries_length_timestamp_and_the_next_boundary():
    headers, jpeg = parse_part(frame(7).part)
    assert jpeg == b"\xff\xd8jpeg7\xff\xd9"
    assert headers["Content-Type"] == "image/jpeg"
    assert float(headers["X-Timestamp"]) == pytest.approx(1007.0)


def test_waiter_gets_only_a_newer_frame():
    hub = FrameHub()
    hub.publish(frame(1))
    assert hub.wait_newer(0, 0.01).seq == 1
    assert hub.wait_newer(1, 0.01) is None


def test_a_slow_consumer_skips_to_the_newest_frame():
    hub = FrameHub()
    for seq in range(1, 6):
        hub.publish(frame(seq))
    assert hub.wait_newer(1, 0.01).seq == 5


def test_threads_are_woken_by_a_publish():
    hub = FrameHub()
    results = []
    waiters = [threading.Thread(target=lambda: results.append(hub.wait_newer(0, 5))) for _ in range(20)]
    for waiter in waiters:
        waiter.start()
    hub.publish(frame(1))
    for waiter in waiters:
        waiter.join(5)
    assert [result.seq for result in results] == [1] * 20


def test_greenlets_are_woken_by_a_native_producer_thread():
    hub = FrameHub()
    greenlets = [gevent.spawn(hub.wait_newer, 0, 5) for _ in range(50)]
    gevent.sleep(0.01)                      # let them all start waiting
    producer = threading.Thread(target=hub.publish, args=(frame(1),))
    producer.start()
    gevent.joinall(greenlets, timeout=5)
    producer.join()
    assert [greenlet.value.seq for greenlet in greenlets] == [1] * 50


def test_native_threads_and_greenlets_wait_on_the_same_hub():
    """Under gevent, the recorder (a native thread) and viewers (greenlets) share one hub."""
    hub = FrameHub()
    greenlets = [gevent.spawn(hub.wait_newer, 0, 5) for _ in range(5)]
    native_results = []
    native = threading.Thread(target=lambda: native_results.append(hub.wait_newer(0, 5)))
    native.start()
    gevent.sleep(0.01)
    producer = threading.Thread(target=hub.publish, args=(frame(1),))
    producer.start()
    gevent.joinall(greenlets, timeout=5)
    native.join(5)
    producer.join()
    assert [greenlet.value.seq for greenlet in greenlets] == [1] * 5
    assert [result.seq for result in native_results] == [1]


def test_a_blocking_call_from_a_greenlet_leaves_the_others_running():
    import time
    from camera_server.blocking import call_blocking
    ticks = []

    def ticker():
        for _ in range(100):
            ticks.append(1)
            gevent.sleep(0.005)

    other = gevent.spawn(ticker)
    blocking = gevent.spawn(call_blocking, time.sleep, 0.3)
    blocking.join(5)
    assert len(ticks) > 10          # a blocked hub would not have let the ticker run at all
    other.kill()
    assert call_blocking(lambda value: value * 2, 21) == 42     # from a plain thread: a direct call


def test_closing_the_hub_lets_every_waiting_thread_and_greenlet_go_with_no_frame():
    """A stopped camera ends its streams now, not after each viewer's wait times out."""
    hub = FrameHub()
    results = []
    threads = [threading.Thread(target=lambda: results.append(hub.wait_newer(0, 60))) for _ in range(5)]
    for thread in threads:
        thread.start()
    greenlets = [gevent.spawn(hub.wait_newer, 0, 60) for _ in range(5)]
    gevent.sleep(0.01)                      # let them all start waiting
    closer = threading.Thread(target=hub.close)
    closer.start()
    gevent.joinall(greenlets, timeout=10)
    for thread in threads + [closer]:
        thread.join(10)
    assert all(greenlet.ready() and greenlet.value is None for greenlet in greenlets)
    assert results == [None] * 5 and hub.closed
    assert hub.wait_newer(0, 60) is None    # later waits answer at once
