"""The auditor web console and the standalone verifier page (static files shipped inside the package).

``xborder audit serve`` serves the console at ``/console/`` beside the API. Nothing is fetched at run time
(no CDN); every response carries a strict Content-Security-Policy (scripts and connections to this origin
only, no inline script, no framing). The page verifies proofs in the browser with WebCrypto against keys the
auditor pins; since the script still comes from the server being checked, :func:`standalone_verifier`
builds one self-contained HTML file (the same verifier inlined, its CSP pinned to the script's hash) for an
auditor to keep offline (``xborder audit verifier-page --out FILE``).

WebCrypto needs a secure context: serve on loopback (127.0.0.1 is one) or through an SSH tunnel or a TLS
proxy; the API server itself does not speak TLS.
"""

from __future__ import annotations

import base64
import hashlib
from functools import cache
from importlib import resources
from typing import Final

__all__ = ["CONSOLE_CSP", "STATIC", "console_asset", "standalone_verifier"]

CONSOLE_CSP: Final = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                      "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
#: path under /console/ -> (file, content type)
STATIC: Final = {
    "": ("index.html", "text/html; charset=utf-8"),
    "index.html": ("index.html", "text/html; charset=utf-8"),
    "app.js": ("app.js", "text/javascript; charset=utf-8"),
    "verify.js": ("verify.js", "text/javascript; charset=utf-8"),
    "style.css": ("style.css", "text/css; charset=utf-8"),
    "verifier.html": ("", "text/html; charset=utf-8"),
}
_SECURITY_HEADERS: Final = (
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
)


@cache
def _read(name: str) -> bytes:
    return resources.files("xborder_gateway.audit").joinpath("_console", name).read_bytes()


def _marker_script(page: str) -> str:
    start = page.index("<script>") + len("<script>")  # the browser hashes everything between the tags
    return page[start:page.index("</script>", start)]


@cache
def standalone_verifier() -> tuple[bytes, str]:
    """The self-contained verifier page and its CSP (the inline script pinned by its SHA-256)."""
    page = _read("verifier.html").decode("utf-8").replace("__VERIFY_JS__", _read("verify.js").decode("utf-8"))
    script = _marker_script(page)
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")
    csp_source = f"sha256-{digest}"
    page = page.replace("__SCRIPT_HASH__", csp_source)
    csp = f"default-src 'none'; script-src '{csp_source}'; style-src 'unsafe-inline'; base-uri 'none'; " \
          "form-action 'none'; frame-ancestors 'none'"
    return page.encode("utf-8"), csp


def console_asset(path: str) -> tuple[bytes, str, tuple[tuple[str, str], ...]] | None:
    """``(body, content type, headers)`` for ``/console/<path>``, or None if there is no such asset."""
    if path not in STATIC:
        return None
    name, content_type = STATIC[path]
    if path == "verifier.html":
        body, csp = standalone_verifier()
    else:
        body, csp = _read(name), CONSOLE_CSP
    return body, content_type, (("Content-Security-Policy", csp), *_SECURITY_HEADERS)
