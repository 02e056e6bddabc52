"""Grad mode: whether operations are recorded on the tape. Thread-local, like PyTorch."""
from __future__ import annotations

import functools
import inspect
import threading

class _State(threading.local):
    enabled = True  # a class default: a fresh thread reads it without a failed lookup
    stack = None


_state = _State()

#: how many threads have grad mode off. Recording reads this one number first and asks the
#: thread-local state (~1 us) only when some thread is inside ``no_grad``. A thread counts
#: before its flag goes off and stops counting after it is back on, so a thread with grad
#: mode off is always counted (a thread that ends inside ``no_grad`` only costs that lookup).
_disabled = [0]
_lock = threading.Lock()


def is_grad_enabled() -> bool:
    """True when operations on tensors that require grad are recorded (per thread)."""
    return _state.enabled


def _set(enabled: bool) -> None:
    if _state.enabled == enabled:
        return
    with _lock:
        if enabled:
            _state.enabled = True
            _disabled[0] -= 1
        else:
            _disabled[0] += 1
            _state.enabled = False


class _GradMode:
    """Context manager and decorator that sets grad mode for the current thread."""

    enabled = True

    # The previous states live on a per-thread stack (not on the instance), so one
    # instance can be entered re-entrantly or from several threads at once.
    def __enter__(self):
        stack = getattr(_state, "stack", None)
        if stack is None:
            stack = _state.stack = []
        stack.append(is_grad_enabled())
        _set(self.enabled)
        return self

    def __exit__(self, *exc):
        _set(_state.stack.pop())
        return False

    def __new__(cls, fn=None):
        self = super().__new__(cls)
        # ``@no_grad`` without parentheses, as PyTorch allows: decorate at once
        return self if fn is None else self(fn)

    def __call__(self, fn):
        mode = self.__class__
        if inspect.isgeneratorfunction(fn):
            return _wrap_generator(fn, mode)

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with mode():
                return fn(*args, **kwargs)
        return wrapper


def _wrap_generator(fn, mode):
    """A generator function whose body runs in ``mode`` at every resume (not the caller's code)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        gen = fn(*args, **kwargs)
        try:
            with mode():
                value = next(gen)
            while True:
                try:
                    sent = yield value
                except GeneratorExit:
                    with mode():
                        gen.close()
                    raise
                except BaseException as err:
                    with mode():
                        value = gen.throw(err)
                else:
                    with mode():
                        value = gen.send(sent)
        except StopIteration as stop:
            return stop.value
    return wrapper


class no_grad(_GradMode):
    """Disable recording: results of operations have ``requires_grad == False``.

    Examples
    --------
    >>> import reversead as rd
    >>> x = rd.tensor([1.0, 2.0], requires_grad=True)
    >>> with rd.no_grad():
    ...     y = x * 2
    >>> y.requires_grad
    False
    """

    enabled = False


class enable_grad(_GradMode):
    """Re-enable recording inside a ``no_grad`` block (or as a decorator).

    Examples
    --------
    >>> import reversead as rd
    >>> x = rd.tensor(1.0, requires_grad=True)
    >>> with rd.no_grad():
    ...     with rd.enable_grad():
    ...         y = x * 2
    >>> y.requires_grad
    True
    """

    enabled = True
