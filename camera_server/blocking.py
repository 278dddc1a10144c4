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
    other greenlets (the viewers) keep going."""
    if not in_greenlet():
        return function(*args, **kwargs)
    import gevent
    return gevent.get_hub().threadpool.apply(function, args, kwargs)
