"""The benchmark's own code cannot rot: each scenario takes the path it claims to measure, and
the report is computed and written. No timings are asserted here."""

import json

import pytest

from bench import inprocess, report, scenarios
from bench.noop import create_noop_app
from bench.run import parse_wrk, summarize
from presets.admission import admit
from webhook.settings import Settings
from webhook.sources.documents import load_presets


@pytest.mark.parametrize(
    ("name", "presets", "matching", "conflict"),
    [
        pytest.param("typical", 10, 3, False, id="typical-has-3-of-10-matching"),
        pytest.param("scale", 10_000, 3, False, id="scale-has-3-of-10000-matching"),
        pytest.param("cluster-scale", 11_000, 3, False, id="cluster-scale-has-3-of-11000-matching"),
        pytest.param("big-pod", 10, 5, False, id="big-pod-has-5-matching"),
        pytest.param("conflict", 10, 3, True, id="conflict-conflicts"),
    ],
)
def test_each_scenario_gets_the_intended_decision(name, presets, matching, conflict):
    scenario = scenarios.build(name)
    assert scenario.preset_count == presets
    assert scenario.matching == matching
    decision = admit(
        json.loads(scenario.body()), inprocess.index_of(scenario), namespaces=scenario.namespaces
    )
    outcome = decision.outcome
    if conflict:
        assert outcome.action == "conflict"
        assert len(decision.warnings) == 1
    else:
        assert outcome.action == "mutated"
        assert len(outcome.applied) == matching


def test_scale_puts_100_presets_in_the_pods_namespace_over_100_namespaces():
    index = inprocess.index_of(scenarios.scale())
    assert len(index.by_namespace) == 100
    assert len(index.for_namespace(scenarios.NAMESPACE)) == 100


def test_cluster_scale_has_1000_cluster_presets_and_one_selecting_the_pod_elsewhere():
    scenario = scenarios.cluster_scale()
    index = inprocess.index_of(scenario)
    assert len(index.cluster_presets) == 1000
    assert sum(len(group) for group in index.by_namespace.values()) == 10_000
    outcome = admit(scenario.review, index, namespaces=scenario.namespaces).outcome
    assert sorted(outcome.applied) == ["clusterpodpreset/cluster-0000", "preset-00000", "preset-00050"]


def test_cluster_scale_presets_and_namespaces_load_through_the_file_loader(tmp_path):
    scenario = scenarios.cluster_scale()
    result = load_presets([str(scenario.write_presets(tmp_path))])
    assert result.problems == ()
    assert len(result.presets) == 11_000
    assert dict(result.namespaces[scenarios.NAMESPACE])["env"] == "prod"


def test_big_pod_has_10_containers_with_50_env_vars():
    containers = scenarios.big_pod().review["request"]["object"]["spec"]["containers"]
    assert [len(c["env"]) for c in containers] == [50] * 10


def test_written_presets_load_cleanly_through_the_file_loader(tmp_path):
    directory = scenarios.typical().write_presets(tmp_path)
    result = load_presets([str(directory)])
    assert result.problems == ()
    assert len(result.presets) == 10


def test_noop_app_allows_without_a_patch():
    client = create_noop_app(Settings(insecure_http=True)).test_client()
    response = client.post("/mutate", data=scenarios.noop().body(), content_type="application/json")
    assert response.status_code == 200
    answer = response.get_json()["response"]
    assert answer == {"uid": scenarios.typical().review["request"]["uid"], "allowed": True}


def test_wrk_result_line_is_parsed():
    line = (
        "BENCH_RESULT requests=2000 duration_us=2000000 bytes=1 p50_us=1500.0 p90_us=2000.0 "
        "p99_us=3000.0 max_us=9000.0 mean_us=1600.0 errors_connect=0 errors_read=0 errors_write=0 "
        "errors_status=0 errors_timeout=0\n"
    )
    result = parse_wrk(line, "", "typical")
    assert result["rps"] == 1000
    assert result["p50_ms"] == 1.5
    assert result["p99_ms"] == 3.0


def test_report_has_ratios_targets_and_a_table(tmp_path):
    def http(rps, p50, p99):
        return summarize(
            [{"requests": 1, "rps": rps, "p50_ms": p50, "p90_ms": p50, "p99_ms": p99, "max_ms": p99}]
        )

    results = {
        "noop": http(1000, 2.0, 4.0),
        "typical": http(900, 2.5, 5.0),
        "scale": http(880, 2.75, 5.5),
        "big-pod": http(500, 4.0, 9.0),
        "conflict": http(950, 2.2, 4.5),
        "engine": {"typical": {"us_per_call": 150.0, "us_per_call_json": 180.0, "presets": 10}},
        "memory": {
            "presets": 10000,
            "rss_mib": 160.0,
            "workers_rss_mib": [150.0, 160.0],
            "baseline_rss_mib": 40.0,
            "load_seconds": 2.0,
        },
    }
    final = report.build_report(results, {"quick": True})
    assert final["ratios"] == {
        "typical_vs_noop_rps": 0.9,
        "typical_vs_noop_p99": 1.25,
        "scale_vs_typical_p50": 1.1,
        "cluster_scale_vs_typical_p50": None,
        "bigpod_vs_typical_p50": 1.6,
        "typical_vs_noop_cpu": None,
    }
    assert final["targets"]["typical_vs_noop_rps"]["met"] is True
    assert final["targets"]["memory_rss_mib"]["met"] is False
    path = tmp_path / "bench.json"
    report.write_report(final, path)
    assert json.loads(path.read_text())["ratios"]["bigpod_vs_typical_p50"] == 1.6
    table = report.format_table(final)
    assert "typical" in table
    assert "memory_rss_mib" in table


def _e2e_result():
    from bench.e2e_latency import summarize as summarize_e2e
    from bench.e2e_latency import tail_breakdown

    latencies = {
        "none": [2.0 + i / 100 for i in range(100)],
        "noop": [3.0 + i / 100 for i in range(100)],
        "fixed": [4.0 + i / 100 for i in range(100)],
        "podpreset": [4.2 + i / 100 for i in range(100)],
        "traced": [4.3 + i / 100 for i in range(100)],
    }
    per_round = {name: [values[0], values[50]] for name, values in latencies.items()}
    requests = [
        {
            "wall_ms": 0.5 + i / 1000,
            "cpu_ms": 0.4,
            "others_cpu_ms": 0.05,
            "gc_ms": 2.0 if i == 199 else 0.0,
            "log_ms": 0.01,
            "log_cpu_ms": 0.01,
        }
        for i in range(200)
    ]
    memory = {
        "1000": {"total_mib": 58.0, "arbiter_mib": 20.0, "workers_mib": [19.0, 19.0], "processes": 3},
        "10000": {"total_mib": 140.0, "arbiter_mib": 60.0, "workers_mib": [40.0, 40.0], "processes": 3},
    }
    return {
        "latency": summarize_e2e(latencies, per_round),
        "tail": tail_breakdown(requests),
        "memory": memory,
    }


def test_report_carries_the_end_to_end_keys_and_their_targets():
    final = report.build_report({"e2e": _e2e_result()}, {"quick": True})
    assert final["replica_pss_mib_1k"] == 58.0
    assert final["replica_pss_mib_10k"] == 140.0
    for name in ("noop_over_none", "fixed_patch_over_noop", "e2e_over_fixed_patch", "e2e_over_none"):
        for key in ("p50_ms", "p90_ms", "p99_ms"):
            assert isinstance(final[f"{name}_{key}"], float)
    assert final["e2e_over_fixed_patch_p50_ms"] == pytest.approx(0.2)
    assert final["noop_over_none_p99_ms"] == pytest.approx(1.0)
    assert final["targets"]["replica_pss_mib_1k"]["met"] is True
    assert final["targets"]["e2e_over_fixed_patch_p50_ms"]["met"] is True
    table = report.format_table(final)
    assert "replica PSS" in table
    assert "e2e_over_fixed_patch" in table


def test_tail_breakdown_names_what_the_slowest_requests_spent():
    tail = _e2e_result()["tail"]
    assert tail["requests"] == 200
    assert tail["slowest_1pct"]["gc_ms"] == pytest.approx(1.0)  # one of the two slowest had a pause
    assert tail["slowest_1pct"]["waiting_ms"] > tail["fastest_half"]["waiting_ms"]
    assert tail["gc_pauses_over_1ms"] == 1
    assert tail["slowest_1pct"]["waiting_for_gil_ms"] == pytest.approx(0.05)
    slow = tail["slowest_1pct"]
    assert slow["waiting_for_cpu_ms"] == pytest.approx(slow["waiting_ms"] - 0.05, abs=0.002)


def test_replica_pss_sums_this_process_and_its_children():
    import os
    import subprocess
    import sys

    from bench.memory import replica_pss

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        pss = replica_pss(os.getpid())
    finally:
        child.kill()
        child.wait()
    assert pss["processes"] >= 2
    assert pss["total_mib"] > pss["arbiter_mib"] > 0
    assert pss["total_mib"] == pytest.approx(pss["arbiter_mib"] + sum(pss["workers_mib"]), abs=0.3)


def test_fixed_patch_app_answers_the_captured_answer_with_each_request_uid():
    import base64

    from bench.fixedpatch import create_fixed_patch_app
    from webhook.server.app import create_app
    from webhook.sources.snapshot import Snapshot

    scenario = scenarios.typical()

    class Source:
        health = None

        def start(self):
            pass

        def stop(self):
            pass

        def snapshot(self):
            return Snapshot(index=inprocess.index_of(scenario), synced=True)

    settings = Settings(insecure_http=True)
    real = create_app(settings, Source()).test_client()
    answer = real.post("/mutate", data=scenario.body(), content_type="application/json").get_json()
    fixed = create_fixed_patch_app(settings, answer).test_client()
    review = json.loads(scenario.body())
    review["request"]["uid"] = "11111111-2222-4333-8444-555555555555"
    got = fixed.post("/mutate", data=json.dumps(review), content_type="application/json").get_json()
    assert got["response"]["uid"] == review["request"]["uid"]
    assert got["response"]["patch"] == answer["response"]["patch"]
    assert len(json.loads(base64.b64decode(got["response"]["patch"]))) == 54
