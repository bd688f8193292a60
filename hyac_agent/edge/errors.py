"""The edge's refusals: each with its own code, under the class of its HTTP status."""

from __future__ import annotations

from hyac_common.errors import Forbidden, HyacError, InvalidInput, Unauthorized


class IpDenied(Forbidden):
    """The client's address matches a deny rule (the answer names the rule), or is in
    none of the allow rules of a list that has some."""

    code = "ip_denied"


class AccessRefused(Unauthorized):
    """The function's access mode needs a token, a function key or a signature the
    request did not carry (or carried wrong)."""

    code = "access_refused"


class CorsRefused(Forbidden):
    """A CORS preflight from an origin, or for a method or header, the function does
    not allow."""

    code = "cors_refused"


class RateLimited(HyacError):
    """This client address sent the function more requests than its rate limit allows;
    ``Retry-After`` says when to try again."""

    code = "rate_limited"
    status = 429


class InvalidCidr(InvalidInput):
    """Not an IPv4 or IPv6 network (``10.0.0.0/8``, ``2001:db8::/32``) or address."""

    code = "invalid_cidr"
