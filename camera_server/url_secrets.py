"""Secrets in URLs (a camera's stream address, a webhook) and what to show and log instead.

A camera's address is shown with the password of its user info (``rtsp://admin:***@host/``), a user
name that stands alone (``https://***@host/``, often a token) and the values of query parameters
whose name holds a word that means a secret, in any case (``?pwd=***``, ``?api_key=***``,
``?X-Sig=***``) hidden. A webhook's is shown as its scheme and host only (``https://host/…``): Slack,
Discord and Home Assistant keep the secret in the path.
"""
import re
import urllib.parse

# Parts of a query parameter's name that make its value a secret: password, passwd, pwd, token,
# access_token, key, apikey, api_key, auth, sig, signature, secret, credentials...
SECRET_NAME_PARTS = ("pass", "pw", "token", "key", "secret", "auth", "sig", "cred")
_SECRET_NAME = re.compile("|".join(SECRET_NAME_PARTS), re.IGNORECASE)
SHOWN = "***"
SHOWN_PATH = "/…"


def is_secret_name(name):
    return bool(_SECRET_NAME.search(name))


_NETLOC = re.compile(r"[a-z][a-z0-9+.-]*://([^/?#]*)", re.IGNORECASE)


def _split(url):
    try:
        return urllib.parse.urlsplit(url)
    except ValueError:      # a malformed address (a bad IPv6 literal): its user info and query still count
        netloc = _NETLOC.match(url)
        return urllib.parse.SplitResult("", netloc.group(1) if netloc else "", "", url.partition("?")[2], "")


def _longest_first(secrets):
    return dict(sorted(secrets.items(), key=lambda item: -len(item[0])))


def url_secrets(url):
    """What in ``url`` gives a secret away, each with what to show instead, longest first."""
    parts = _split(url)
    secrets = {}
    user_info, at, _ = parts.netloc.rpartition("@")
    user, colon, password = user_info.partition(":")
    if at and colon and password:
        secrets[f"{user}:{password}@"] = f"{user}:{SHOWN}@"
    elif at and user_info:          # a user name alone is often a token (https://TOKEN@host)
        secrets[f"{user_info}@"] = f"{SHOWN}@"
    for pair in re.split("[&;]", parts.query):
        name, equals, value = pair.partition("=")
        if equals and value and is_secret_name(name):
            secrets[pair] = f"{name}={SHOWN}"
    return _longest_first(secrets)


def redact(text, secrets):
    """``text`` with each of ``secrets`` (from url_secrets) replaced by what may be shown."""
    for secret, shown in secrets.items():
        text = text.replace(secret, shown)
    return text


def url_origin(url):
    """``url`` as a webhook's may be shown and logged: scheme, host and port, the rest as ``/…``."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:      # a malformed address (a bad IPv6 literal): nothing of it is shown
        return "…"
    scheme = f"{parts.scheme}:" if parts.scheme else ""
    host = "//" + parts.netloc.rpartition("@")[2] if parts.netloc else ""
    rest = SHOWN_PATH if parts.path.strip("/") or parts.query or parts.fragment else parts.path
    return scheme + host + rest


def origin_secrets(url):
    """What in ``url`` gives a secret away when only url_origin(url) may be shown: url_secrets and the path."""
    secrets, parts = url_secrets(url), _split(url)
    for tail in (parts.path, urllib.parse.urlunsplit(("", "", parts.path, parts.query, parts.fragment))):
        if tail.strip("/"):
            secrets[tail] = SHOWN_PATH
    return _longest_first(secrets)
