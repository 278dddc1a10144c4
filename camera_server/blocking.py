"""Calls that may block for a while, made from a greenlet without stalling the others.

The server's requests are greenlets under the gevent worker and native threads elsewhere (the gthread
worker, the development server, the tests); capture, media and web all wait this way.
"""
import sys


def in_greenlet():
    """True in a greenlet spawned under gevent (a gevent worker's request), False in a plain thread."""
    greenlet = sys.modules.get("greenlet")
    return greenlet is not None and greenlet.getcurrent().parent is not None


def call_blocking(function, *args, **kwargs):
    """Run a call that may block for a while; from a greenlet, in the hub's thread pool, so the
    other greenlets (the viewers) keep going. Its exception is raised here, as a direct call's."""
    if not in_greenlet():
        return function(*args, **kwargs)
    import gevent
    value, error = gevent.get_hub().threadpool.apply(_outcome, (function, args, kwargs))
    if error is not None:
        raise error
    return value


def _outcome(function, args, kwargs):
    """(value, None), or (None, the exception): gevent's pool prints the traceback of an exception
    that leaves its thread, which for an error the caller answers (a 409, a full disk) is noise."""
    try:
        return function(*args, **kwargs), None
    except Exception as error:
        return None, error
