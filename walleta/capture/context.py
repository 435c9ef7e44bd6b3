"""Attribution: which customer, feature and end user a model call is made for.

The current attribution lives in a `contextvars.ContextVar`, so it follows the code that makes
the call: each thread has its own, an asyncio task inherits a copy of its creator's at creation,
and nested `attribute(...)` blocks override only the fields they name.

    with walleta.attribute(customer="acme", feature="summarize"):
        client.chat.completions.create(...)          # recorded for acme / summarize

Per call, `tag(...)` gives `extra_headers` that override the context for that one request; the
instrumented transport removes them before the request leaves the process.

    client.embeddings.create(..., extra_headers=walleta.tag(customer="globex"))

A thread started inside an `attribute` block does not see it (that is how threads and
contextvars work); run its target with `contextvars.copy_context().run(...)` to carry it over.
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from types import TracebackType
from typing import NamedTuple
from urllib.parse import quote, unquote

__all__ = ["Attribution", "attribute", "current", "tag", "HEADER_PREFIX", "HEADER_FIELDS", "EMPTY"]

HEADER_PREFIX = "x-walleta-"
# attribution field -> request header carrying a per-call override
HEADER_FIELDS = {"customer": "x-walleta-customer", "feature": "x-walleta-feature", "user": "x-walleta-user"}


class Attribution(NamedTuple):
    """Who a call is for. Empty strings mean "not set" (recorded as unattributed / no feature).

    Immutable (a named tuple: built with one C call on the caller's path, compared and hashed
    by value).
    """

    customer: str = ""
    feature: str = ""
    user: str = ""

    def merged(self, customer: str | None, feature: str | None, user: str | None) -> "Attribution":
        """This attribution with the given non-None fields replaced."""
        return _new_attribution(
            Attribution,
            (
                self[0] if customer is None else str(customer),
                self[1] if feature is None else str(feature),
                self[2] if user is None else str(user),
            ),
        )


_new_attribution = tuple.__new__
EMPTY = Attribution()
# True once tag() has been called in this process: until then the transport skips looking for
# per-call headers (keeps the caller's path short for apps that only use `attribute`).
TAGS_USED = False
_CURRENT: ContextVar[Attribution] = ContextVar("walleta_attribution", default=EMPTY)


def current() -> Attribution:
    """The attribution in force for the running thread or task."""
    return _CURRENT.get()


class attribute:  # noqa: N801 - used like a function: `with walleta.attribute(...)`
    """Context manager (sync or async `with`) that sets the customer/feature/user of calls made inside it.

    Fields left as None are inherited from the enclosing block. Also usable as a decorator on a
    plain function. Inputs: customer, feature, user (any value; converted with str()).
    """

    __slots__ = ("_fields", "_tokens")

    def __init__(self, customer: str | None = None, feature: str | None = None, *, user: str | None = None) -> None:
        # Converted once here; __enter__ (on every call's path) only picks fields.
        self._fields = (
            None if customer is None else str(customer),
            None if feature is None else str(feature),
            None if user is None else str(user),
        )
        self._tokens: list[Token[Attribution]] = []

    def __enter__(self) -> Attribution:
        customer, feature, user = self._fields
        parent = _CURRENT.get()
        value = _new_attribution(
            Attribution,
            (
                parent[0] if customer is None else customer,
                parent[1] if feature is None else feature,
                parent[2] if user is None else user,
            ),
        )
        self._tokens.append(_CURRENT.set(value))
        return value

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        _CURRENT.reset(self._tokens.pop())

    async def __aenter__(self) -> Attribution:
        return self.__enter__()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.__exit__(exc_type, exc, tb)

    def __call__(self, function):  # type: ignore[no-untyped-def]
        """Decorator form: the function's calls run inside this attribution."""
        import functools

        fields = self._fields

        @functools.wraps(function)
        def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
            with attribute(fields[0], fields[1], user=fields[2]):
                return function(*args, **kwargs)

        return wrapper


def tag(customer: str | None = None, feature: str | None = None, *, user: str | None = None) -> dict[str, str]:
    """Headers for `extra_headers=` that attribute one call, overriding the context.

    Values are percent-encoded (any text is allowed); the instrumented transport strips these
    headers, so they never reach OpenAI.
    """
    global TAGS_USED
    TAGS_USED = True
    headers: dict[str, str] = {}
    for name, value in (("customer", customer), ("feature", feature), ("user", user)):
        if value is not None:
            headers[HEADER_FIELDS[name]] = quote(str(value), safe="")
    return headers


def decode_header_value(raw: bytes) -> str:
    """Inverse of the encoding done by `tag`."""
    return unquote(raw.decode("latin-1"))
