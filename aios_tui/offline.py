"""No network: use the Hugging Face cache at once instead of retrying a name that cannot resolve.

huggingface_hub retries a failed request five times with back-off (about 45 s) before
transformers falls back to the cache; on a box without DNS that is pure waiting.
"""

from __future__ import annotations

import functools
import os
import socket
from urllib.parse import urlparse

from aios_tui import notes

_TRUE = ("1", "ON", "YES", "TRUE")
_PROXIES = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")


_unresolved: list[str] = []  # the Hub host, once hub_offline found it does not resolve


@functools.cache
def hub_offline() -> bool:
    """Whether the Hub is to be treated as offline; switches offline mode on when its host
    does not resolve (a proxy, which resolves names itself, is trusted)."""
    if os.environ.get("HF_HUB_OFFLINE", "").upper() in _TRUE:
        return True
    if any(os.environ.get(v) for v in _PROXIES):
        return False
    host = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co").hostname or "huggingface.co"
    try:
        socket.getaddrinfo(host, 443)
    except (socket.gaierror, UnicodeError):
        _unresolved.append(host)
        os.environ["HF_HUB_OFFLINE"] = "1"
        try:  # read at call time by huggingface_hub, but set at its import
            import huggingface_hub.constants as constants

            constants.HF_HUB_OFFLINE = True
        except ImportError:
            pass
        notes.say(f"{host} cannot be resolved; using the local Hugging Face cache only")
        return True
    return False


def offline_reason() -> str | None:
    """Why nothing is downloaded, in words a message can carry; None when the Hub is used.

    The user's own HF_HUB_OFFLINE is named, so a machine that does have network is not
    told that the Hub cannot be reached."""
    if not hub_offline():
        return None
    if _unresolved:
        return f"the Hub cannot be reached ({_unresolved[0]} does not resolve)"
    return "HF_HUB_OFFLINE is set (unset it to download)"
