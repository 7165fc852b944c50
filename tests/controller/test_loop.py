"""The controller loop: passes run only while leading, in order, and stop with the process."""

from __future__ import annotations

import threading

from webhook.controller.loop import Controller, PassContext


class Recorder:
    def __init__(self, name: str, log: list[str], *, delay: float = 60.0, fail: bool = False) -> None:
        self.name, self.log, self.delay, self.fail = name, log, delay, fail
        self.stopped = False

    def run(self, context: PassContext) -> float:
        self.log.append(self.name)
        if self.fail:
            raise RuntimeError("boom")
        return self.delay

    def stop(self) -> None:
        self.stopped = True


def test_no_pass_runs_while_not_leading() -> None:
    log: list[str] = []
    controller = Controller([Recorder("status", log)], lambda: False)
    controller.run_due()
    assert log == []


def test_due_passes_run_in_order_and_wait_their_delay() -> None:
    log: list[str] = []
    now = [0.0]
    controller = Controller(
        [Recorder("status", log, delay=5.0), Recorder("rollout", log, delay=1.0)],
        lambda: True,
        clock=lambda: now[0],
    )
    assert controller.run_due() == 1.0
    assert log == ["status", "rollout"]
    now[0] = 2.0
    controller.run_due()
    assert log == ["status", "rollout", "rollout"]
    controller.wake()
    controller.run_due()
    assert log == ["status", "rollout", "rollout", "status", "rollout"]


def test_losing_the_lease_mid_round_runs_no_further_pass() -> None:
    log: list[str] = []
    leading = [True]

    class LosesLease(Recorder):
        def run(self, context: PassContext) -> float:
            leading[0] = False
            return super().run(context)

    controller = Controller([LosesLease("first", log), Recorder("second", log)], lambda: leading[0])
    controller.run_due()
    assert log == ["first"]


def test_a_failing_pass_backs_off_and_the_others_still_run() -> None:
    log: list[str] = []
    now = [0.0]
    controller = Controller(
        [Recorder("bad", log, fail=True), Recorder("good", log, delay=0.0)],
        lambda: True,
        clock=lambda: now[0],
    )
    controller.run_due()
    controller.run_due()
    assert log == ["bad", "good", "good"]
    now[0] = 1.0
    controller.run_due()
    assert log == ["bad", "good", "good", "bad", "good"]


def test_stop_ends_the_loop_and_stops_every_pass() -> None:
    log: list[str] = []
    passes = [Recorder("status", log), Recorder("rollout", log)]
    controller = Controller(passes, lambda: True)
    thread = threading.Thread(target=controller.run)
    thread.start()
    controller.stop()
    thread.join(timeout=60)  # a bound for a loop that never stops, not a speed
    assert not thread.is_alive()
    assert all(p.stopped for p in passes)
