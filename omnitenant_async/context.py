"""The current tenant: one ``ContextVar`` and the context managers that set it.

The tenant lives here and nowhere else (not on ``django.db.connection``, not on settings), so it
follows the work through ``await``, ``sync_to_async``/``async_to_sync`` (asgiref copies context
both ways), ``database_sync_to_async`` and ``asyncio.to_thread``. Activation only sets the
variable with a token and resets it, so it never does I/O and nests exactly.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import copy
import copyreg
import dataclasses
import datetime
import decimal
import functools
import inspect
import operator
import uuid
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from itertools import compress, repeat
from types import TracebackType
from typing import Any, ParamSpec, TypeVar

from django.core.exceptions import ImproperlyConfigured

from .exceptions import NoTenantActive
from .isolation import IsolationType
from .types import TenantLike
from .validators import validate_schema_identifier

P = ParamSpec("P")
R = TypeVar("R")

PUBLIC_SCHEMA = "public"


@dataclass(frozen=True, slots=True)
class TenantState:
    """Everything the engine, router and caches need to act for one tenant; immutable."""

    tenant_id: str | None
    isolation_type: IsolationType = IsolationType.SCHEMA
    schema_name: str = PUBLIC_SCHEMA
    # Database tenants: the pool key of the tenant's database (user@host:port/name) and its
    # connection settings.
    pool_key: str | None = None
    db_settings: Mapping[str, Any] | None = field(default=None, compare=False, hash=False)
    # Public schema appended to the search_path (off while migrating a tenant schema).
    include_public: bool = True
    tenant: TenantLike | None = field(default=None, compare=False, hash=False, repr=False)

    @classmethod
    def from_tenant(cls, tenant: TenantLike) -> TenantState:
        """Build the state of a tenant model instance (a ``BaseTenant`` subclass).

        Each isolation type registers its builder (:func:`register_state_builder`), so this
        module knows nothing of engines: a database tenant's state comes from
        ``engines.database_settings``, which the app config imports when Django starts.
        """
        isolation = IsolationType(tenant.isolation_type)
        try:
            build = _state_builders[isolation]
        except KeyError:
            raise ImproperlyConfigured(
                f"No TenantState builder for isolation type {isolation.value!r}: add "
                "'omnitenant_async' to INSTALLED_APPS (its ready() registers them)."
            ) from None
        return build(tenant)

    @property
    def is_public(self) -> bool:
        """True for the public schema of the master database (no tenant)."""
        return self.schema_name == PUBLIC_SCHEMA and self.pool_key is None

    @property
    def cache_prefix(self) -> str:
        if self.tenant_id is not None:
            return f"t.{self.tenant_id}"
        if self.pool_key is not None:
            return f"d.{self.pool_key}"
        return f"s.{self.schema_name}"

    def with_own_tenant(self) -> TenantState:
        """This state with a private copy of the model instance, for one request or connection.

        The registry hands every request the same cached state; a view that changed
        ``request.tenant.name`` (or its ``config`` dict) would otherwise change it for every
        concurrent request and thread until the cache expires.
        """
        tenant = self.tenant
        if tenant is None:
            return self
        # dataclasses.replace() without its per-call field walk and __init__ (~1.5 µs less per
        # request): every field is copied as is, then the tenant replaced. TenantState has no
        # __post_init__ to skip (tests/test_hotpath_copy.py watches for one).
        # The fields are set by C loops (map, and a deque that keeps nothing): a Python loop
        # over them cost more than the rest of the copy.
        clone = _new_object(TenantState)
        _consume(map(_set_attribute, repeat(clone), _STATE_FIELDS, _read_fields(self)))
        _set_attribute(clone, "tenant", _own_copy(tenant))
        return clone


_new_object = object.__new__
_set_attribute = object.__setattr__  # the frozen dataclass's own way to set a field
_STATE_FIELDS = tuple(f.name for f in dataclasses.fields(TenantState) if f.name != "tenant")
_read_fields = operator.attrgetter(*_STATE_FIELDS)
_consume: Callable[[Iterable[object]], object] = functools.partial(collections.deque, maxlen=0)

StateBuilder = Callable[[TenantLike], TenantState]
_state_builders: dict[IsolationType, StateBuilder] = {}


def register_state_builder(isolation: IsolationType, build: StateBuilder) -> None:
    """Say how a tenant of ``isolation`` becomes a :class:`TenantState` (one builder per type)."""
    _state_builders[isolation] = build


def _schema_state(tenant: TenantLike) -> TenantState:
    """A schema tenant lives in the schema named after its id: the ground case, built in."""
    return TenantState(
        tenant.tenant_id, IsolationType.SCHEMA, schema_name=tenant.tenant_id, tenant=tenant
    )


register_state_builder(IsolationType.SCHEMA, _schema_state)


def _own_copy[T](instance: T) -> T:
    """A shallow model copy whose mutable field values (JSON dicts and lists) are copied too.

    Every request makes one, so a Django model instance is copied by hand (~2 µs) rather than
    through ``copy.copy()`` (~9 µs: ``__reduce__``, ``apps.get_model()``, ``__setstate__``,
    a second generic copy for the ``ModelState``), with the same result (``_model_copy``).
    Anything else, or a model that customises its copying, goes through ``copy.copy()``.
    """
    cls = type(instance)
    fast = _fast_copy.get(cls)
    if fast is None:
        fast = _fast_copy[cls] = _copies_alike(instance)
    if fast:
        return _model_copy(instance)
    return _generic_copy(instance)


def _generic_copy[T](instance: T) -> T:
    clone = copy.copy(instance)
    for name, value in vars(clone).items():
        if isinstance(value, (dict, list)) and not name.startswith("_"):
            setattr(clone, name, copy.deepcopy(value))
    return clone


#: Per class: does ``_model_copy`` give what ``_generic_copy`` gives? Decided at first use.
_fast_copy: dict[type, bool] = {}
#: Django's ``ModelState``, set by the first ``_copies_alike`` (Django may not be set up when
#: this module is imported).
_model_state_class: type | None = None


def _model_copy[T](instance: T) -> T:
    """What ``copy.copy()`` of a Django model does, spelled out, then the mutable fields copied.

    ``Model.__getstate__``: the instance's ``__dict__`` copied, its ``ModelState`` copied
    (``ModelState.__getstate__``: its ``__dict__`` without ``peers``) with a copy of its
    ``fields_cache``, memoryviews over a copy of their bytes; ``model_unpickle`` then makes
    the instance with ``cls.__new__`` and ``__setstate__`` fills its ``__dict__`` (the
    ``_django_version`` pickle marker left out: nothing reads it on a live instance).
    """
    values = dict(vars(instance))
    model_state = values["_state"]
    if type(model_state) is not _model_state_class:
        return _generic_copy(instance)
    state_values = dict(vars(model_state))
    state_values.pop("peers", None)
    fields_cache = state_values.get("fields_cache")
    state_values["fields_cache"] = {} if fields_cache is None else dict(fields_cache)
    own_state = _new_object(_model_state_class)
    vars(own_state).update(state_values)
    values["_state"] = own_state
    # Only values of a type outside _IMMUTABLE are looked at (usually one, the config dict): a
    # Python loop over every field cost most of the copy.
    for name in _not_immutable(values):
        value = values[name]
        if type(value) is dict or type(value) is list:
            if not name.startswith("_"):
                values[name] = copy.deepcopy(value) if value else type(value)()
        elif isinstance(value, (dict, list)):
            if not name.startswith("_"):
                values[name] = copy.deepcopy(value)
        elif isinstance(value, memoryview):
            values[name] = memoryview(bytes(value))
    clone: T = _new_object(type(instance))
    vars(clone).update(values)
    return clone


def _not_immutable(values: dict[str, Any]) -> list[str]:
    """The names whose value's type is not in ``_IMMUTABLE``, found without a Python loop."""
    immutable = map(_IMMUTABLE.__contains__, map(type, values.values()))
    return list(compress(values, map(operator.not_, immutable)))


#: Types of field values a shallow copy may share (immutable). ``ModelState`` is there because
#: ``_model_copy`` has already replaced it.
_IMMUTABLE: set[type] = {
    str, int, float, bool, bytes, type(None), decimal.Decimal, uuid.UUID,
    datetime.datetime, datetime.date, datetime.time, datetime.timedelta,
}  # fmt: skip


def _copies_alike(instance: object) -> bool:
    """True if ``instance``'s class is a Django model copied the stock way, and the hand-made
    copy of this instance has the attributes (and ``ModelState`` attributes) of the generic
    one: a Django release that copies differently then falls back to ``copy.copy()``."""
    from django.db.models import Model
    from django.db.models.base import ModelState
    from django.db.utils import DJANGO_VERSION_PICKLE_KEY

    global _model_state_class
    _model_state_class = ModelState
    _IMMUTABLE.add(ModelState)
    cls = type(instance)
    if not isinstance(instance, Model) or copyreg.dispatch_table.get(cls) is not None:
        return False
    stock = (
        getattr(cls, "__copy__", None) is None
        and cls.__reduce_ex__ is object.__reduce_ex__
        and cls.__reduce__ is Model.__reduce__
        and cls.__getstate__ is Model.__getstate__
        and getattr(cls, "__setstate__", None) is getattr(Model, "__setstate__", None)
        and type(instance._state) is ModelState
    )
    if not stock:
        return False
    fast, generic = _model_copy(instance), _generic_copy(instance)
    generic_values = dict(vars(generic))
    generic_values.pop(DJANGO_VERSION_PICKLE_KEY, None)
    return (
        fast.__class__ is generic.__class__
        and vars(fast).keys() == generic_values.keys()
        and vars(fast._state).keys() == vars(generic._state).keys()
    )


PUBLIC = TenantState(tenant_id=None)

_current: contextvars.ContextVar[TenantState | None] = contextvars.ContextVar(
    "omnitenant_async.current", default=None
)


def get_current_state() -> TenantState | None:
    """The active :class:`TenantState`, or ``None`` when nothing is active."""
    return _current.get()


def require_state() -> TenantState:
    """The active :class:`TenantState`; raise :class:`NoTenantActive` when there is none."""
    state = _current.get()
    if state is None:
        raise NoTenantActive(
            "No tenant is active. Serve the request through TenantMiddleware, or wrap the code "
            "in `with tenant_context(tenant):` (or `use_master_db()` for master data)."
        )
    return state


def get_current_tenant() -> TenantLike | None:
    """The active tenant model instance, or ``None`` (no tenant, or the public schema)."""
    state = _current.get()
    return state.tenant if state is not None else None


#: What activates a tenant: its row, a state the library built, or ``None`` for no tenant.
TenantRef = TenantLike | TenantState | None


def _as_state(tenant: object) -> TenantState | None:
    if tenant is None or isinstance(tenant, TenantState):
        return tenant
    if not isinstance(tenant, TenantLike):
        raise TypeError(
            f"tenant_context() needs a tenant model instance, a TenantState or None, "
            f"not {tenant!r}."
        )
    return TenantState.from_tenant(tenant)


#: ``hook(state)`` run whenever a :class:`tenant_context` is entered; the callable it returns
#: (if any) is run on exit. Layers above the context subscribe (``urlconf``); the context
#: itself imports none of them.
Undo = Callable[[], None]
ActivationHook = Callable[[TenantState | None], Undo | None]
_activation_hooks: list[ActivationHook] = []


def on_activate(hook: ActivationHook) -> None:
    """Subscribe ``hook`` to every tenant activation (see :data:`ActivationHook`)."""
    if hook not in _activation_hooks:
        _activation_hooks.append(hook)


def _run_hooks(state: TenantState | None) -> list[Undo]:
    undos: list[Undo] = []
    try:
        for hook in _activation_hooks:
            undo = hook(state)
            if undo is not None:
                undos.append(undo)
    except BaseException:
        _undo(undos)
        raise
    return undos


def _undo(undos: list[Undo]) -> None:
    for undo in reversed(undos):
        undo()


#: What :func:`activate` did, for :func:`deactivate` to undo.
Activation = tuple[contextvars.Token[TenantState | None], list[Undo]]


def activate(state: TenantState | None) -> Activation:
    """Make ``state`` current and run the activation hooks; :func:`deactivate` undoes both.

    The two halves of :class:`tenant_context`, for a caller that holds the state already and
    can undo it in a ``finally`` (the HTTP middleware, once per request).
    """
    token = _current.set(state)
    try:
        undos = _run_hooks(state) if _activation_hooks else []
    except BaseException:
        _current.reset(token)
        raise
    return token, undos


def deactivate(activation: Activation) -> None:
    token, undos = activation
    try:
        _undo(undos)
    finally:
        _current.reset(token)


class tenant_context:
    """Activate a tenant for a block: ``with tenant_context(t):`` or ``async with``.

    Nesting restores the previous tenant exactly. ``None`` deactivates (no tenant), so
    tenant-scoped queries fail closed inside the block.
    """

    __slots__ = ("_state", "_tokens")

    def __init__(self, tenant: TenantRef) -> None:
        self._state = _as_state(tenant)
        self._tokens: list[Activation] = []

    @property
    def state(self) -> TenantState | None:
        return self._state

    def __enter__(self) -> TenantLike | None:
        self._tokens.append(activate(self._state))
        return self._state.tenant if self._state is not None else None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        deactivate(self._tokens.pop())

    async def __aenter__(self) -> TenantLike | None:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def __call__(self, func: Callable[P, R]) -> Callable[P, R]:
        """Use as a decorator on a sync or async function."""
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_inner(*args: P.args, **kwargs: P.kwargs) -> Any:
                with tenant_context(self._state):
                    return await func(*args, **kwargs)

            return async_inner  # type: ignore[return-value]

        @functools.wraps(func)
        def inner(*args: P.args, **kwargs: P.kwargs) -> R:
            with tenant_context(self._state):
                return func(*args, **kwargs)

        return inner


def use_tenant(tenant: TenantRef) -> tenant_context:
    """Alias of :class:`tenant_context` (django-omnitenant's name)."""
    return tenant_context(tenant)


def use_public_schema() -> tenant_context:
    """Run in the public schema of the master database: master and shared models only."""
    return tenant_context(PUBLIC)


def use_master_db() -> tenant_context:
    """Run against the master database (its public schema). Same as :func:`use_public_schema`."""
    return tenant_context(PUBLIC)


def use_schema(schema_name: str, *, include_public: bool = True) -> tenant_context:
    """Run in an explicit schema of the master database, without a tenant row.

    Any valid PostgreSQL schema name works (``acme_corp`` included); ``"public"`` is the
    public state, and the system schemas are refused.
    """
    if schema_name != PUBLIC_SCHEMA:
        validate_schema_identifier(schema_name)
    return tenant_context(
        TenantState(tenant_id=None, schema_name=schema_name, include_public=include_public)
    )


def schema_context(schema_name: str, *, include_public: bool = True) -> tenant_context:
    """Alias of :func:`use_schema` under django-tenants' name (docs/migrating.md)."""
    return use_schema(schema_name, include_public=include_public)


def bind_context[**P, R](func: Callable[P, R]) -> Callable[P, R]:
    """Wrap ``func`` to run in a copy of the *current* context, wherever it is called.

    ``loop.run_in_executor`` and ``ThreadPoolExecutor.submit`` carry no context: pass them
    ``bind_context(fn)`` so the tenant goes along. Each call runs in its own copy of the
    captured context, so the wrapper may run in many threads at once (``executor.map``) and
    no call sees what another set.
    """
    ctx = contextvars.copy_context()

    @functools.wraps(func)
    def inner(*args: P.args, **kwargs: P.kwargs) -> R:
        return ctx.copy().run(func, *args, **kwargs)

    return inner


def spawn[R](coro: Coroutine[Any, Any, R], *, tenant: TenantRef) -> asyncio.Task[R]:
    """Start a task in a fresh context holding only ``tenant`` (explicit, may be ``None``).

    A task created with ``asyncio.create_task`` keeps whatever tenant was active when it was
    created - for a task started lazily by one request, that request's tenant forever.
    """
    ctx = contextvars.Context()
    ctx.run(_current.set, _as_state(tenant))
    return asyncio.get_running_loop().create_task(coro, context=ctx)


class TenantContext:
    """django-omnitenant's facade, delegating to the functions of this module."""

    get_tenant = staticmethod(get_current_tenant)
    get_state = staticmethod(get_current_state)
    use_tenant = staticmethod(use_tenant)
    use_master_db = staticmethod(use_master_db)
    use_schema = staticmethod(use_schema)
    use_public_schema = staticmethod(use_public_schema)
