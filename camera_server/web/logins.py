"""Who is logged in, and how many wrong keys each client sent: in memory, for one server process."""
import hmac
import ipaddress
import math
import secrets
import threading
import time


def keys_match(given, expected):
    """Constant-time comparison; an empty ``expected`` (no key configured) matches nothing.

    ``surrogatepass``: a lone surrogate (JSON's ``"\\ud800"``) is a wrong key, not an error.
    """
    return bool(expected) and hmac.compare_digest(given.encode("utf-8", "surrogatepass"),
                                                  expected.encode("utf-8", "surrogatepass"))


def client_key(address):
    """Whose wrong keys ``address`` counts with: an IPv6 client holds a whole /64, so the /64."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if ip.version == 4:
        return str(ip)
    if ip.ipv4_mapped:          # ::ffff:a.b.c.d: an IPv4 client on a dual-stack socket
        return str(ip.ipv4_mapped)
    return str(ipaddress.ip_network((ip, 64), strict=False))


class LockedOut(Exception):
    """Too many wrong userkeys from one client: it has to wait."""

    def __init__(self, wait_s):
        self.retry_after = math.ceil(wait_s)      # whole seconds, as HTTP's Retry-After
        super().__init__(f"too many wrong keys: try again in {self.retry_after} s")


class Logins:
    """The open sessions (random ids, in memory) and the wrong userkeys counted per client address.

    Each ``allowed_failures`` wrong keys in a row lock the address out for ``lockout_s``, doubled at
    each further round up to ``max_lockout_s``; a right key, or ``max_lockout_s`` without a wrong
    one after the last lockout ended, starts the count again. IPv6 addresses count per /64.
    """

    def __init__(self, allowed_failures=5, lockout_s=30.0, max_lockout_s=900.0, max_entries=10000,
                 clock=time.monotonic):
        self.allowed_failures, self.lockout_s, self.max_lockout_s = allowed_failures, lockout_s, max_lockout_s
        self.max_entries, self.clock = max_entries, clock
        self._sessions = {}         # id -> None, oldest first
        self._failures = {}         # address -> (count, locked_until, last_failure), oldest first
        self._lock = threading.Lock()

    def check(self, address, given, expected):
        """Whether ``given`` is the key; a wrong one counts; LockedOut while the address waits."""
        address = client_key(address)
        with self._lock:
            count, locked_until, last = self._failures.get(address, (0, 0.0, 0.0))
            now = self.clock()
            if now < locked_until:
                raise LockedOut(locked_until - now)
            if keys_match(given, expected):
                self._failures.pop(address, None)
                return True
            if now - max(last, locked_until) > self.max_lockout_s:     # a lockout is not a quiet while
                count = 0
            count += 1
            if count % self.allowed_failures == 0:
                rounds = count // self.allowed_failures
                locked_until = now + min(self.lockout_s * 2 ** (rounds - 1), self.max_lockout_s)
            self._failures.pop(address, None)
            self._failures[address] = (count, locked_until, now)
            _forget_oldest(self._failures, self.max_entries)
            return False

    def start_session(self):
        session_id = secrets.token_urlsafe(24)
        with self._lock:
            self._sessions[session_id] = None
            _forget_oldest(self._sessions, self.max_entries)
        return session_id

    def has_session(self, session_id):
        with self._lock:
            return session_id in self._sessions

    def end_session(self, session_id):
        with self._lock:
            self._sessions.pop(session_id, None)


def _forget_oldest(entries, most):
    while len(entries) > most:
        del entries[next(iter(entries))]
