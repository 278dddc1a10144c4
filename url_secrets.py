"""Secrets in URLs (a camera's stream address, a webhook) and what to show and log instead.

The password of the user info (``rtsp://admin:***@host/``) and the values of query parameters whose
name holds a word that means a secret, in any case (``?pwd=***``, ``?api_key=***``, ``?X-Sig=***``).
"""
import re
import urllib.parse

# Parts of a query parameter's name that make its value a secret: password, passwd, pwd, token,
# access_token, key, apikey, api_key, auth, sig, signature, secret, credentials...
SECRET_NAME_PARTS = ("pass", "pw", "token", "key", "secret", "auth", "sig", "cred")
_SECRET_NAME = re.compile("|".join(SECRET_NAME_PARTS), re.IGNORECASE)
SHOWN = "***"


def is_secret_name(name):
    return bool(_SECRET_NAME.search(name))


def url_secrets(url):
    """What in ``url`` gives a secret away, each with what to show instead, longest first."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:      # a malformed address (a bad IPv6 literal): its query still counts
        parts = urllib.parse.SplitResult("", "", "", url.partition("?")[2], "")
    secrets = {}
    user_info, at, _ = parts.netloc.rpartition("@")
    user, colon, password = user_info.partition(":")
    if at and colon and password:
        secrets[f"{user}:{password}@"] = f"{user}:{SHOWN}@"
    for pair in re.split("[&;]", parts.query):
        name, equals, value = pair.partition("=")
        if equals and value and is_secret_name(name):
            secrets[pair] = f"{name}={SHOWN}"
    return dict(sorted(secrets.items(), key=lambda item: -len(item[0])))


def redact(text, secrets):
    """``text`` with each of ``secrets`` (from url_secrets) replaced by what may be shown."""
    for secret, shown in secrets.items():
        text = text.replace(secret, shown)
    return text


def redact_url(url):
    """``url`` as it may be shown and logged."""
    return redact(url, url_secrets(url))
