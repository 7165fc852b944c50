"""The AdmissionReview contract: shape checks (400s), skip rules and the response fields."""

import base64
import copy
import json

import jsonpatch
import pytest
from support.presets import pod, preset
from support.reviews import admission_review

from presets.admission import BadReview, PresetIndex, admit, encode_review

INDEX = PresetIndex.build(
    [
        preset(
            "creds",
            env=[{"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "pw"}}}],
            rv="7",
            selector={"matchLabels": {"app": "web"}},
        ),
        preset("elsewhere", namespace="other", env=[{"name": "X", "value": "1"}]),
    ]
)


def review(obj=None, **request):
    pod_ = obj if obj is not None else pod({"app": "web"})
    return admission_review(pod_, uid="uid-1", namespace="namespace", **request)


def test_a_matching_pod_gets_a_base64_json_patch_and_the_uid_is_echoed():
    body = review()
    decision = admit(body, INDEX)
    response = decision.response
    assert response["apiVersion"] == "admission.k8s.io/v1" and response["kind"] == "AdmissionReview"
    inner = response["response"]
    assert inner["uid"] == "uid-1" and inner["allowed"] is True and inner["patchType"] == "JSONPatch"
    patched = jsonpatch.apply_patch(body["request"]["object"], json.loads(base64.b64decode(inner["patch"])))
    assert patched["spec"]["containers"][0]["env"][0]["name"] == "DB_PASSWORD"
    assert patched["metadata"]["annotations"] == {"podpreset.admission.kubernetes.io/podpreset-creds": "7"}
    assert "warnings" not in inner


def test_no_patch_fields_when_nothing_changes():
    inner = admit(review(pod({"app": "api"})), INDEX).response["response"]
    assert inner == {"uid": "uid-1", "allowed": True}


def test_the_request_namespace_wins_over_an_empty_object_namespace():
    obj = pod({"app": "web"})
    del obj["metadata"]["namespace"]
    del obj["metadata"]["name"]
    obj["metadata"]["generateName"] = "web-"
    decision = admit(review(obj), INDEX)
    assert decision.outcome.applied == ("creds",)
    assert decision.request.pod_name == "web-"


def test_a_conflict_admits_the_pod_unchanged_with_one_warning_per_conflict():
    obj = pod({"app": "web"}, env=[{"name": "DB_PASSWORD", "value": "plain"}])
    inner = admit(review(obj), INDEX).response["response"]
    assert "patch" not in inner and inner["allowed"] is True
    [warning] = inner["warnings"]
    assert "creds" in warning and "DB_PASSWORD" in warning and "plain" not in warning


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"operation": "UPDATE", "oldObject": pod({"app": "web"})}, id="update"),
        pytest.param({"operation": "DELETE", "object": None}, id="delete-without-object"),
        pytest.param({"subResource": "status"}, id="subresource"),
        pytest.param(
            {"resource": {"group": "apps", "version": "v1", "resource": "deployments"}}, id="other-resource"
        ),
    ],
)
def test_only_pod_create_is_acted_on(change):
    body = review()
    body["request"].update(change)
    decision = admit(body, INDEX)
    assert decision.outcome is None
    assert decision.response["response"] == {"uid": "uid-1", "allowed": True}


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        pytest.param(lambda b: b.update(kind="Pod"), "kind: expected AdmissionReview", id="wrong-kind"),
        pytest.param(lambda b: b.update(apiVersion="admission.k8s.io/v1beta1"), "apiVersion", id="v1beta1"),
        pytest.param(lambda b: b.pop("request"), "request: expected an object, got null", id="no-request"),
        pytest.param(lambda b: b["request"].pop("uid"), "request.uid: required", id="no-uid"),
        pytest.param(lambda b: b["request"].update(uid=7), "request.uid: required", id="uid-not-a-string"),
        pytest.param(
            lambda b: b["request"].pop("object"), "request.object: required for CREATE", id="no-object"
        ),
        pytest.param(
            lambda b: b["request"].update(object=[]),
            "request.object: expected an object, got a list",
            id="object-a-list",
        ),
        pytest.param(
            lambda b: b["request"].update(dryRun="yes"), "request.dryRun: expected a boolean", id="dryRun"
        ),
        pytest.param(
            lambda b: b["request"]["object"]["spec"].update(containers={}),
            "request.object.spec.containers: expected a list",
            id="containers-a-mapping",
        ),
        pytest.param(
            lambda b: b["request"]["object"]["spec"]["containers"][0].update(env=[1]),
            "request.object.spec.containers[0].env[0]: expected an object, got a number",
            id="env-item",
        ),
        pytest.param(
            lambda b: b["request"]["object"]["metadata"].update(labels={"a": 1}),
            "request.object.metadata.labels[a]: expected a string",
            id="label-value",
        ),
        pytest.param(
            lambda b: b["request"]["object"]["metadata"].update(annotations=[]),
            "request.object.metadata.annotations: expected an object",
            id="annotations-a-list",
        ),
    ],
)
def test_malformed_reviews_raise_bad_review_naming_the_field(mutate, message):
    body = review()
    mutate(body)
    with pytest.raises(BadReview, match=message.replace("[", r"\[").replace("]", r"\]")):
        admit(body, INDEX)


@pytest.mark.parametrize("body", [None, [], "x", 1], ids=["null", "list", "string", "number"])
def test_a_body_that_is_not_an_object_is_a_bad_review(body):
    with pytest.raises(BadReview, match="expected a JSON object"):
        admit(body, INDEX)


def test_the_review_is_never_mutated():
    body = review()
    before = copy.deepcopy(body)
    admit(body, INDEX)
    assert body == before


def test_dry_run_is_reported_and_changes_nothing_in_the_answer():
    wet = admit(review(), INDEX)
    dry = admit(review(dryRun=True), INDEX)
    assert dry.request.dry_run and not wet.request.dry_run
    assert dry.response == wet.response


def test_encoding_is_compact_and_stable():
    assert encode_review({"b": 1, "a": "é"}) == '{"b":1,"a":"é"}'.encode()


def test_index_groups_by_namespace_sorted_by_name():
    env = [{"name": "A", "value": "1"}]
    index = PresetIndex.build(
        [preset("b", env=env), preset("a", env=env), preset("c", namespace="x", env=env)]
    )
    assert [p.name for p in index.for_namespace("namespace")] == ["a", "b"]
    assert index.for_namespace("nowhere") == ()
    assert len(index) == 3


@pytest.mark.parametrize(
    "obj", [{}, {"metadata": {"name": "p"}}, {"spec": None}], ids=["empty", "no-spec", "null-spec"]
)
def test_a_pod_without_spec_still_gets_a_patch_that_applies(obj):
    volume_preset = preset(
        "vols", volumes=[{"name": "v", "emptyDir": {}}], tolerations=[{"operator": "Exists"}]
    )
    index = PresetIndex.build([volume_preset])
    inner = admit(review(obj), index).response["response"]
    patched = jsonpatch.apply_patch(obj, json.loads(base64.b64decode(inner["patch"])))
    assert patched["spec"]["volumes"] == [{"name": "v", "emptyDir": {}}]
    assert "patch" not in admit(review(patched), index).response["response"]


def test_json_encoding_handles_what_orjson_refuses():
    from presets.admission import decode_json, encode_json

    assert encode_json({"big": 2**70, "text": "é"}) == f'{{"big":{2**70},"text":"é"}}'.encode()
    assert decode_json(b'{"a": NaN}')["a"] != decode_json(b'{"a": NaN}')["a"]  # json's NaN, as before
    with pytest.raises(json.JSONDecodeError) as caught:
        decode_json(b'{"a": 1')
    assert (caught.value.lineno, caught.value.colno) == (1, 8)


def test_replacing_one_namespace_keeps_the_others():
    env = [{"name": "A", "value": "1"}]
    index = PresetIndex.build([preset("a", env=env), preset("b", namespace="x", env=env)])
    changed = index.with_namespace("namespace", [preset("c", env=env), preset("a", env=env)])
    assert [p.name for p in changed.for_namespace("namespace")] == ["a", "c"]
    assert [p.name for p in changed.for_namespace("x")] == ["b"]
    assert [p.name for p in index.for_namespace("namespace")] == ["a"]
    assert "namespace" not in index.with_namespace("namespace", []).namespaces


@pytest.mark.parametrize("field", ["kind", "apiVersion"])
def test_a_long_kind_or_api_version_is_echoed_cut_short(field):
    body = review()
    body[field] = "x" * 100_000
    with pytest.raises(BadReview) as raised:
        admit(body, INDEX)
    message = str(raised.value)
    assert message.startswith(f"{field}: expected ")
    assert "'" + "x" * 64 + "'... (100000 characters)" in message
    assert len(message) < 200


@pytest.mark.parametrize(
    ("value", "shown"), [(None, "got nothing"), (["a"], "got a list"), ("Pod", "got 'Pod'")]
)
def test_a_wrong_kind_is_named_by_its_value_or_its_json_type(value, shown):
    body = review()
    body["kind"] = value
    with pytest.raises(BadReview, match=shown):
        admit(body, INDEX)
