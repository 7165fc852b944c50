"""Leader election's decisions: who may write the Lease, when a holder stops acting."""

from __future__ import annotations

import re

import pytest

from webhook.controller.election import (
    ElectionConfig,
    LeaseRecord,
    next_record,
    record_of,
    released,
    still_leading,
)

NOW_TEXT = "2026-12-06T23:00:00.000000Z"


def attempt(current: LeaseRecord | None, *, me: str = "b", observed_at: float = 100.0, now: float = 100.0):
    return next_record(
        current, identity=me, observed_at=observed_at, now=now, now_text=NOW_TEXT, lease_duration=15
    )


HELD_BY_A = LeaseRecord(
    holder="a", lease_duration_seconds=15, acquire_time="t0", renew_time="t1", transitions=3
)


def test_without_a_lease_the_replica_creates_one_holding_it() -> None:
    step = attempt(None)
    assert step.action == "create"
    assert step.record == LeaseRecord(
        holder="b", lease_duration_seconds=15, acquire_time=NOW_TEXT, renew_time=NOW_TEXT, transitions=0
    )


def test_a_lease_another_replica_renewed_recently_is_left_alone() -> None:
    step = attempt(HELD_BY_A, observed_at=100.0, now=114.9)
    assert step.action == "wait"
    assert "held by a" in step.reason


def test_a_lease_unchanged_for_its_whole_duration_on_our_clock_is_taken_over() -> None:
    step = attempt(HELD_BY_A, observed_at=100.0, now=115.0)
    assert step.action == "update"
    assert step.record is not None
    assert step.record.holder == "b"
    assert step.record.transitions == 4
    assert step.record.acquire_time == NOW_TEXT


def test_expiry_is_judged_by_the_records_own_duration_not_ours() -> None:
    long_lease = LeaseRecord(holder="a", lease_duration_seconds=60)
    assert attempt(long_lease, observed_at=100.0, now=130.0).action == "wait"
    assert attempt(long_lease, observed_at=100.0, now=160.0).action == "update"


def test_the_holder_renews_keeping_acquire_time_and_transitions() -> None:
    step = attempt(HELD_BY_A, me="a", observed_at=0.0, now=1000.0)
    assert step.action == "update"
    assert step.reason == "renew"
    assert step.record == LeaseRecord(
        holder="a", lease_duration_seconds=15, acquire_time="t0", renew_time=NOW_TEXT, transitions=3
    )


def test_a_released_lease_is_taken_at_once() -> None:
    given_up = released(HELD_BY_A, "t2")
    assert given_up.holder == ""
    assert given_up.lease_duration_seconds == 1
    step = attempt(given_up, observed_at=100.0, now=100.0)
    assert step.action == "update"
    assert step.record is not None and step.record.holder == "b"
    assert step.reason == "released"


@pytest.mark.parametrize(
    ("last_renewed", "now", "leading"),
    [
        pytest.param(None, 5.0, False, id="never-renewed"),
        pytest.param(100.0, 100.0, True, id="just-renewed"),
        pytest.param(100.0, 109.9, True, id="within-the-deadline"),
        pytest.param(100.0, 110.0, False, id="at-the-deadline-it-stops"),
    ],
)
def test_a_holder_acts_only_within_the_renew_deadline(last_renewed, now, leading) -> None:
    assert still_leading(last_renewed, now, renew_deadline=10.0) is leading


def test_record_of_reads_a_lease_and_defaults_what_is_missing() -> None:
    lease = {
        "spec": {
            "holderIdentity": "pod-1",
            "leaseDurationSeconds": 20,
            "acquireTime": "a",
            "renewTime": "r",
            "leaseTransitions": 2,
        }
    }
    assert record_of(lease) == LeaseRecord(
        holder="pod-1", lease_duration_seconds=20, acquire_time="a", renew_time="r", transitions=2
    )
    assert record_of({}) == LeaseRecord()
    assert record_of({"spec": {"leaseDurationSeconds": "x", "leaseTransitions": -1}}) == LeaseRecord()


def test_a_record_round_trips_through_its_spec() -> None:
    assert record_of({"spec": HELD_BY_A.to_spec()}) == HELD_BY_A


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        pytest.param(
            ElectionConfig(namespace="n", identity="i", lease_duration=10),
            "--lease-duration (10) must be greater than --renew-deadline",
            id="lease-not-above-deadline",
        ),
        pytest.param(
            ElectionConfig(namespace="n", identity="i", renew_deadline=2.0, retry_period=2.0),
            "--renew-deadline (2.0) must be greater than 1.2 x --retry-period",
            id="deadline-not-above-retry",
        ),
    ],
)
def test_timings_that_cannot_keep_two_leaders_apart_are_refused(config, problem) -> None:
    with pytest.raises(ValueError, match=re.escape(problem)):
        config.check()


class FakeLeases:
    """One Lease with resourceVersion checks, as the API server keeps it."""

    def __init__(self) -> None:
        self.lease: dict | None = None
        self.version = 0
        self.conflicts = 0

    def request(self, method: str, path: str, *, body=None, timeout=None, **_: object):
        from webhook.controller.api import ApiError

        if method == "GET":
            if self.lease is None:
                raise ApiError(404, "Not Found")
            return self.lease
        if method == "POST":
            if self.lease is not None:
                raise ApiError(409, "Conflict")
        elif body["metadata"].get("resourceVersion") != self.lease["metadata"]["resourceVersion"]:
            self.conflicts += 1
            raise ApiError(409, "Conflict")
        self.version += 1
        self.lease = {**body, "metadata": {**body["metadata"], "resourceVersion": str(self.version)}}
        return self.lease


def elector(api: FakeLeases, identity: str, now: list[float]):
    from webhook.controller.election import LeaderElector

    config = ElectionConfig(namespace="ns", identity=identity)
    return LeaderElector(api, config, clock=lambda: now[0])  # type: ignore[arg-type]


def test_two_electors_on_one_lease_one_leads_until_it_stops_renewing() -> None:
    api, now = FakeLeases(), [100.0]
    a, b = elector(api, "a", now), elector(api, "b", now)
    assert a.try_once() is True
    assert b.try_once() is False
    assert a.leading() and not b.leading()
    now[0] = 105.0
    assert a.try_once() is True  # renewed
    now[0] = 114.0
    assert b.try_once() is False  # b saw the renewal at 105: not expired on its clock
    now[0] = 116.0
    assert not a.leading()  # no renewal for 11 s: past the renew deadline, it stops acting
    now[0] = 128.0
    assert b.try_once() is False  # b first saw a's last renewal at 114: expired only at 129
    now[0] = 129.0
    assert b.try_once() is True
    assert b.leading()
    assert api.lease["spec"]["leaseTransitions"] == 1
    assert a.try_once() is False
    assert not a.leading()


def test_a_takeover_written_from_a_stale_read_is_refused_and_the_holder_keeps_leading() -> None:
    class Racing(FakeLeases):
        """The holder renews between the other's read and its write."""

        race = False

        def request(self, method: str, path: str, **options: object):
            answer = super().request(method, path, **options)
            if method == "GET" and self.race:
                self.version += 1
                self.lease = {
                    **self.lease,
                    "metadata": {**self.lease["metadata"], "resourceVersion": str(self.version)},
                }
            return answer

    api, now = Racing(), [0.0]
    a, b = elector(api, "a", now), elector(api, "b", now)
    assert a.try_once() is True
    b._read()
    api.race = True
    now[0] = 30.0
    assert b.try_once() is False  # expired on its clock, but its write carried a stale version
    assert api.conflicts == 1
    assert api.lease["spec"]["holderIdentity"] == "a"
    assert not b.leading()


def test_stop_gives_the_lease_up_for_the_next_to_take_at_once() -> None:
    api, now = FakeLeases(), [0.0]
    a, b = elector(api, "a", now), elector(api, "b", now)
    a.try_once()
    a.stop(release=True)
    assert api.lease["spec"]["holderIdentity"] is None
    assert not a.leading()
    assert b.try_once() is True
