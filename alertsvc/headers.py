"""The Content-Security-Policy every page carries, and who may put a page in a frame.

One home for the policy: ``register_security_headers`` (``alertsvc/__init__.py``) sets it on
every response, and the one page made to be framed (``/embed/register``) sets the same
policy with its own ``frame-ancestors``.
"""

from __future__ import annotations

FRAME_NOBODY = "'none'"


def content_security_policy(frame_ancestors: str = FRAME_NOBODY) -> str:
    """Our policy: nothing from elsewhere, no inline script or style, no framing but
    ``frame-ancestors`` (``'none'`` unless a page says otherwise)."""
    return (
        f"default-src 'self'; img-src 'self' data:; frame-ancestors {frame_ancestors}; "
        "form-action 'self'; base-uri 'none'"
    )


def frame_ancestors(origins: list[str]) -> str:
    """The ``frame-ancestors`` sources for these origins: ``'none'`` when there are none,
    so an unconfigured service refuses every frame (fails closed)."""
    return " ".join(origins) if origins else FRAME_NOBODY


def allows_framing(policy: str) -> bool:
    """True if ``policy`` names origins that may frame the page.

    ``X-Frame-Options`` has no value meaning "these origins": a page that may be framed by
    the origins its ``frame-ancestors`` lists must not also say ``DENY``.
    """
    for directive in policy.split(";"):
        name, _, sources = directive.strip().partition(" ")
        if name.lower() == "frame-ancestors":
            return sources.strip() not in ("", FRAME_NOBODY)
    return False
