"""call_blocking from a greenlet: the call runs in gevent's thread pool, its answer and its exception
come back as a direct call's, and an exception the caller handles prints nothing."""
import pytest

from camera_server.blocking import call_blocking

gevent = pytest.importorskip("gevent")


def refuse(name):
    raise FileExistsError(f"{name} exists")


def test_the_answer_and_the_exception_come_back_to_the_greenlet():
    assert gevent.spawn(call_blocking, divmod, 7, 2).get(timeout=10) == (3, 1)
    with pytest.raises(FileExistsError, match="porch exists"):
        gevent.spawn(call_blocking, refuse, "porch").get(timeout=10)


def test_an_exception_the_caller_handles_prints_no_traceback(capfd):
    def answer():
        try:
            call_blocking(refuse, "porch")
        except FileExistsError:
            return 409
    assert gevent.spawn(answer).get(timeout=10) == 409
    gevent.sleep(0.1)           # the hub would print the pool's error on its next turn
    captured = capfd.readouterr()
    assert "Traceback" not in captured.err and "FileExistsError" not in captured.err
