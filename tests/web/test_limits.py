"""The web demo's time limit and its busy answer, for every kind of model.

No test here depends on the machine's speed: the time limit is read on a clock the
test controls (each reading by the work advances it by one "second", so a limit of L
lets exactly L model queries through; or one the test sets by hand), and a request
that must be running while another arrives holds the model on a
:class:`threading.Event` until the test lets it go.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from sklearn.ensemble import RandomForestClassifier
from torch import nn

from advml.data import Dataset, load_dataset
from advml.models import CallableClassifier, SklearnClassifier, TorchClassifier
from advml.models.base import Classifier
from advml.web import DemoService, create_app
from advml.web.limits import Job, LimitedModel, RequestTimeout

_WAIT = 60.0  # upper bound of a wait on a condition (never reached unless a test fails)


class TickingClock:
    """A clock that advances one second at every reading by the work.

    The work reads it once when a job starts and once before each model query. The
    app's watchdog, on the event loop, reads it without advancing it.
    """

    def __init__(self) -> None:
        self.now = 0.0
        self.readings = 0

    def __call__(self) -> float:
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # not the event loop: the work
            self.now += 1.0
            self.readings += 1
        return self.now


class ManualClock:
    """A clock that stands still until the test sets ``now``."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_dataset("digits")


def _torch_model() -> Classifier:
    """A network defined here, not by advml: BatchNorm and GELU, untrained (seed 0)."""
    torch.manual_seed(0)
    module = nn.Sequential(
        nn.Flatten(), nn.Linear(64, 32), nn.BatchNorm1d(32), nn.GELU(), nn.Linear(32, 10)
    ).eval()
    return TorchClassifier(module, input_shape=(1, 8, 8), n_classes=10, bounds=(0.0, 1.0))


def _sklearn_model(digits: Dataset) -> Classifier:
    forest = RandomForestClassifier(n_estimators=10, random_state=0)
    forest.fit(digits.x_train.reshape(len(digits.x_train), -1), digits.y_train)
    return SklearnClassifier(forest, input_shape=(1, 8, 8), bounds=(0.0, 1.0))


def _probs(x: np.ndarray) -> np.ndarray:
    """A fixed smooth scoring rule of 8x8 inputs (10 classes)."""
    w = np.random.default_rng(0).normal(size=(64, 10)).astype(np.float32)
    z = x.reshape(len(x), -1) @ w
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return np.asarray(e / e.sum(axis=1, keepdims=True))


def _callable_model(fn: Callable[[np.ndarray], np.ndarray] = _probs) -> Classifier:
    return CallableClassifier(fn, input_shape=(1, 8, 8), n_classes=10, bounds=(0.0, 1.0))


def _detail(response: Any) -> str:
    return str(response.json()["detail"])


_ATTACK = {"image": {"dataset": "digits", "index": 0}, "strength": "high"}
_PREDICT = {"image": {"dataset": "digits", "index": 1}}


# -- the limit stops the work, whatever the model ----------------------------------------
@pytest.mark.parametrize(
    ("kind", "attack"),
    [
        ("torch", "cw_l2"),
        ("torch", "square"),
        ("sklearn", "square"),
        ("sklearn", "greedy_pixel"),
        ("callable", "square"),
    ],
)
def test_the_limit_stops_the_attack_at_its_next_model_query(
    digits: Dataset, kind: str, attack: str
) -> None:
    model = {
        "torch": _torch_model,
        "sklearn": lambda: _sklearn_model(digits),
        "callable": _callable_model,
    }[kind]()
    clock = TickingClock()
    limit = 3  # every attack request makes more queries than this (two views alone)
    svc = DemoService(model, digits, timeout=limit, clock=clock)
    with TestClient(create_app(svc, prepare_defences=False)) as c:
        before = clock.readings
        r = c.post("/api/attack", json={**_ATTACK, "attack": attack})
        assert r.status_code == 504, r.text
        assert f"limit of {limit} s" in _detail(r) and "--timeout" in _detail(r)
        # One reading starts the job, one precedes each query: `limit` queries ran, the
        # next was refused, and the worker stopped there (no reading since the answer).
        assert clock.readings - before == 1 + limit + 1
        after = clock.readings
        # The worker is free: the next request is computed at once, with a fresh limit.
        r = c.post("/api/predict", json=_PREDICT)
        assert r.status_code == 200, r.text
        assert clock.readings - after == 2  # its start and its one query


def test_the_limit_applies_from_the_python_api(digits: Dataset) -> None:
    clock = TickingClock()
    svc = DemoService(_sklearn_model(digits), digits, timeout=5, clock=clock)
    x, _ = svc.image("digits", 0)
    with pytest.raises(RequestTimeout, match="time limit"):
        svc.run(lambda: svc.attack(x, attack="square", strength="high"))
    # Outside run() nothing is limited: the same attack runs to its end.
    out = svc.attack(x, attack="square", strength="low")
    assert out["queries"] > 5


def test_a_job_is_per_thread_and_can_be_cancelled(digits: Dataset) -> None:
    svc = DemoService(_callable_model(), digits, timeout=100, clock=TickingClock())
    x, _ = svc.image("digits", 0)
    job = svc.new_job()
    seen: list[Job | None] = []

    def work() -> str:
        seen.append(svc.current_job())
        other: list[Job | None] = []
        t = threading.Thread(target=lambda: other.append(svc.current_job()))
        t.start()
        t.join(_WAIT)
        seen.extend(other)
        job.cancel()
        svc.view(x)  # the next query after cancel() is refused
        return "not reached"

    with pytest.raises(RequestTimeout, match="stopped"):
        svc.run(work, job)
    assert seen == [job, None]  # another thread's queries are not limited by this job
    assert svc.current_job() is None
    with pytest.raises(RequestTimeout, match="before it started"):
        svc.run(lambda: 1, job)  # a cancelled job never starts
    assert svc.run(lambda: 1) == 1


def test_the_limited_model_is_the_models_seam(digits: Dataset) -> None:
    inner = _torch_model()
    model = LimitedModel(inner, lambda: None)
    assert isinstance(model, Classifier)
    assert (model.input_shape, model.n_classes, model.bounds) == ((1, 8, 8), 10, (0.0, 1.0))
    assert model.has_gradients and model.has_scores
    x = digits.x_test[:3]
    np.testing.assert_array_equal(model.predict_proba(x), inner.predict_proba(x))
    assert model.query_count == inner.query_count == 6


# -- a busy model ------------------------------------------------------------------------
class Gate:
    """A model function that blocks in its ``block_at``-th call until ``release()``."""

    def __init__(self, block_at: int) -> None:
        self.calls = 0
        self.block_at = block_at
        self.entered = threading.Event()
        self._open = threading.Event()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.calls += 1
        if self.calls == self.block_at:
            self.entered.set()
            assert self._open.wait(_WAIT), "the test never released the model"
        return _probs(x)

    def release(self) -> None:
        self._open.set()


def _until(condition: Callable[[], bool]) -> None:
    """Wait until ``condition()`` holds (it is a state the test brought about, not a race)."""
    done = threading.Event()
    for _ in range(int(_WAIT / 0.01)):
        if condition():
            done.set()
            break
        done.wait(0.01)
    assert done.is_set(), "the condition never held"


def _in_thread(fn: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []
    t = threading.Thread(target=lambda: out.append(fn()))
    t.start()
    return t, out


@pytest.fixture
def gated(digits: Dataset) -> Iterator[tuple[Gate, DemoService]]:
    gate = Gate(block_at=3)
    yield gate, DemoService(_callable_model(gate), digits, timeout=30)
    gate.release()


def test_a_request_arriving_while_another_runs_gets_503_with_retry_after(
    gated: tuple[Gate, DemoService],
) -> None:
    gate, svc = gated
    with TestClient(create_app(svc, prepare_defences=False, max_wait=0)) as c:
        t, answers = _in_thread(lambda: c.post("/api/attack", json={**_ATTACK, "attack": "square"}))
        assert gate.entered.wait(_WAIT)
        r = c.post("/api/predict", json=_PREDICT)
        assert r.status_code == 503, r.text
        assert "busy" in _detail(r)
        retry = int(r.headers["Retry-After"])
        assert 1 <= retry <= 30  # the rest of the running request's limit
        assert f"{retry} s" in _detail(r)
        gate.release()
        t.join(_WAIT)
        assert answers[0].status_code == 200, answers[0].text
        assert c.post("/api/predict", json=_PREDICT).status_code == 200


def test_a_waiting_request_runs_once_the_model_is_free(
    gated: tuple[Gate, DemoService],
) -> None:
    gate, svc = gated
    app = create_app(svc, prepare_defences=False, max_wait=_WAIT)
    with TestClient(app) as c:
        t1, first = _in_thread(lambda: c.post("/api/attack", json={**_ATTACK, "attack": "square"}))
        assert gate.entered.wait(_WAIT)
        t2, second = _in_thread(lambda: c.post("/api/predict", json=_PREDICT))
        _until(lambda: app.state.runner.slot.waiting == 1)  # the second request is queued
        gate.release()
        t1.join(_WAIT)
        t2.join(_WAIT)
        assert first[0].status_code == 200 and second[0].status_code == 200


def test_a_query_that_hangs_is_answered_504_and_the_model_stays_busy_until_it_returns(
    digits: Dataset,
) -> None:
    gate = Gate(block_at=3)  # the attack's second query hangs
    clock = ManualClock()
    svc = DemoService(_callable_model(gate), digits, timeout=10, clock=clock)
    app = create_app(svc, prepare_defences=False, max_wait=0)
    slot = app.state.runner.slot
    try:
        with TestClient(app) as c:
            t, answers = _in_thread(
                lambda: c.post("/api/attack", json={**_ATTACK, "attack": "square"})
            )
            assert gate.entered.wait(_WAIT)
            clock.now = 10 + app.state.runner.grace + 1  # past the limit and the grace
            t.join(_WAIT)
            r = answers[0]
            assert r.status_code == 504, r.text  # answered while the query still hangs
            assert "limit of 10 s" in _detail(r)
            # The model is still inside that query: busy (503), not a second 504.
            busy = c.post("/api/predict", json=_PREDICT)
            assert busy.status_code == 503 and "Retry-After" in busy.headers
            assert slot.busy
            gate.release()
            _until(lambda: not slot.busy)
            # The hung query returned and the attack stopped there: no further query.
            assert gate.calls == 3
            assert c.post("/api/predict", json=_PREDICT).status_code == 200
            assert gate.calls == 4
    finally:
        gate.release()
