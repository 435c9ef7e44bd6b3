"""Attribution: which customer, feature and end user a model call is made for.

The current attribution lives in a `contextvars.ContextVar`, so it follows the code that makes
the call: each thread has its own, an asyncio task inherits a copy of its creator's at creation,
and nested `attribute(...)` blocks override only the fields they name.

    with walleta.attribute(customer="acme", feature="summarize"):
        client.chat.completions.create(...)          # recorded for acme / summarize

Per call, `tag(...)` gives `extra_headers` that override the context for that one request; the
instrumented transport removes them before the request leaves the process.

    client.embeddings.create(..., extra_headers=walleta.tag(customer="globex"))

One `attribute` object can be shared (e.g. `ACME = walleta.attribute(customer="acme")` at module
level, then `with ACME:` in a thread pool or in many asyncio tasks) and nested in itself: what to
restore when a block ends is kept in the context, not on the object.

A thread started inside an `attribute` block does not see it (that is how threads and
contextvars work); run its target with `contextvars.copy_context().run(...)` to carry it over.
"""

from __future__ import annotations

from contextvars import ContextVar
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

# The context variable holds a *frame*, a plain tuple (attribution, parent frame, owner): the
# attribution in force, the frame to restore when the block that set it ends, and the
# `attribute` instance that opened that block. What to restore travels with the context (each
# thread and task has its own), never on the `attribute` instance, so one instance can be open
# in many threads and tasks at once and nested in itself. Readers take item 0:
# `_FRAME.get()[0]` (one C call and a tuple index on the caller's path).
Frame = tuple  # (Attribution, Frame | None, attribute | None)
_ROOT: Frame = (EMPTY, None, None)
_FRAME: ContextVar[Frame] = ContextVar("walleta_attribution", default=_ROOT)
_get_frame = _FRAME.get
_set_frame = _FRAME.set


def current() -> Attribution:
    """The attribution in force for the running thread or task."""
    return _get_frame()[0]


def _unwind(owner: "attribute", frame: Frame | None) -> None:
    """Leave `owner`'s innermost block when it is not the top frame (a block inside it was never
    closed, e.g. a suspended generator's): restore what was in force before `owner`'s block,
    dropping the unclosed ones above it. No frame of `owner` (the block was opened in another
    context): nothing to undo."""
    while frame is not None:
        if frame[2] is owner:
            _set_frame(frame[1])
            return
        frame = frame[1]


_MAX_INSTANCES = 1024
_INSTANCES: dict[tuple[object, object, object], "attribute"] = {}  # (customer, feature, user) as passed -> instance


class attribute:  # noqa: N801 - used like a function: `with walleta.attribute(...)`
    """Context manager (sync or async `with`) that sets the customer/feature/user of calls made inside it.

    Fields left as None are inherited from the enclosing block. Also usable as a decorator on a
    plain or `async def` function. Inputs: customer, feature, user (any value; converted with
    str()). One instance may be shared (e.g. a module-level constant) and entered from any
    number of threads and asyncio tasks at once, and nested in itself.

    The block is on the path of every call it wraps, so it is kept to three short Python frames
    (`__new__`, `__enter__`, `__exit__`): instances are cached by their fields (safe, as they
    can be shared), so `walleta.attribute(customer="acme")` built for each call is a dict
    lookup after the first; the attribution of a block opened at the top level is built once per
    instance, and that of a block inside another is reused while the enclosing one is the same
    (e.g. per-call blocks inside a request's block).
    """

    __slots__ = ("_fields", "_value", "_last")
    _fields: tuple[str | None, str | None, str | None]
    _value: Attribution
    _last: tuple[Attribution, Attribution]

    def __new__(cls, customer: str | None = None, feature: str | None = None, *, user: str | None = None) -> "attribute":
        key = (customer, feature, user)
        try:
            return _INSTANCES[key]
        except (KeyError, TypeError):  # not built yet; or an unhashable field value
            pass
        self = object.__new__(cls)
        self._fields = fields = (
            None if customer is None else str(customer),
            None if feature is None else str(feature),
            None if user is None else str(user),
        )
        # the attribution when nothing encloses the block
        self._value = _new_attribution(Attribution, (fields[0] or "", fields[1] or "", fields[2] or ""))
        self._last = (EMPTY, self._value)
        # Only text keys are kept (True == 1 as a key, but their str() differ); the cache is
        # bounded (an app naming thousands of end users pays the build for the others).
        if cls is attribute and len(_INSTANCES) < _MAX_INSTANCES and all(v is None or v.__class__ is str for v in key):
            _INSTANCES[key] = self
        return self

    def __enter__(self) -> Attribution:
        frame = _get_frame()
        parent = frame[0]
        if parent is EMPTY:  # nothing set around this block
            value = self._value
        else:
            last = self._last  # (parent, value) of the last enclosed entry: the same in a request
            value = last[1] if last[0] is parent else self._merge(parent)
        _set_frame((value, frame, self))
        return value

    def _merge(self, parent: Attribution) -> Attribution:
        """This block's fields over `parent`'s (remembered for the next entry under `parent`)."""
        customer, feature, user = self._fields
        value = _new_attribution(
            Attribution,
            (
                parent[0] if customer is None else customer,
                parent[1] if feature is None else feature,
                parent[2] if user is None else user,
            ),
        )
        self._last = (parent, value)  # one store of an immutable pair: safe between threads
        return value

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        frame = _get_frame()
        if frame[2] is self:
            _set_frame(frame[1])
        else:
            _unwind(self, frame)

    async def __aenter__(self) -> Attribution:
        return self.__enter__()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.__exit__(exc_type, exc, tb)

    def __repr__(self) -> str:
        names = ("customer", "feature", "user")
        return "attribute(" + ", ".join(f"{n}={v!r}" for n, v in zip(names, self._fields) if v is not None) + ")"

    def __call__(self, function):  # type: ignore[no-untyped-def]
        """Decorator form: each call of `function` (each run of the coroutine, for an `async def`)
        is inside this attribution. The instance itself is reused (it is safe to share)."""
        import functools
        import inspect

        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def async_wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
                with self:
                    return await function(*args, **kwargs)

            return async_wrapper

        @functools.wraps(function)
        def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
            with self:
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
