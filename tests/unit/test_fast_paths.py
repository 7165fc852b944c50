"""The engine's shortcuts give exactly what the plain rules give.

``PresetIndex.candidates`` narrows presets by one required label, and ``merge_prepared``
reuses the presets' own merge for containers that share no key with them; both must be
invisible in results.
"""

from helpers import preset
from hypothesis import given, settings
from hypothesis import strategies as st

from presets.admission import PresetIndex
from presets.merge import ENV, VOLUME_MOUNTS, merge_keyed, merge_prepared, prepare

KEYS = st.sampled_from(["app", "tier", "team"])
VALUES = st.sampled_from(["a", "b", "c"])
LABELS = st.dictionaries(KEYS, VALUES, max_size=3)


@st.composite
def selectors(draw):
    match_labels = draw(st.dictionaries(KEYS, VALUES, max_size=2))
    expressions = draw(
        st.lists(
            st.fixed_dictionaries(
                {
                    "key": KEYS,
                    "operator": st.sampled_from(["In", "NotIn", "Exists", "DoesNotExist"]),
                }
            ),
            max_size=2,
        )
    )
    for expr in expressions:
        if expr["operator"] in ("In", "NotIn"):
            expr["values"] = draw(st.lists(VALUES, min_size=1, max_size=2, unique=True))
    return {"matchLabels": match_labels, "matchExpressions": expressions}


@settings(max_examples=200, deadline=None)
@given(st.lists(selectors(), max_size=8), LABELS)
def test_candidates_hold_every_preset_that_selects_the_pod(selector_list, labels):
    presets = [
        preset(f"p{i}", selector=s, env=[{"name": "A", "value": "1"}]) for i, s in enumerate(selector_list)
    ]
    index = PresetIndex.build(presets)
    selecting = {p.name for p in presets if p.selector.matches(labels)}
    assert selecting <= {p.name for p in index.candidates("namespace", labels)}


NAMES = st.sampled_from(["A", "B", "C"])
ENV_VARS = st.builds(lambda n, v: {"name": n, "value": v}, NAMES, st.sampled_from(["1", "2"]))
MOUNTS = st.builds(
    lambda n, p: {"name": n, "mountPath": p}, st.sampled_from(["v", "w"]), st.sampled_from(["/x", "/y"])
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(ENV_VARS, max_size=4),
    st.lists(st.lists(ENV_VARS, max_size=3, unique_by=lambda e: e["name"]), min_size=1, max_size=3),
)
def test_prepared_env_merge_equals_the_plain_rule(existing, preset_envs):
    presets = [preset(f"p{i}", env=env) for i, env in enumerate(preset_envs) if env]
    expected = merge_keyed(ENV, existing, presets, 'container "c"')
    assert merge_prepared(prepare(ENV, presets), existing, 'container "c"') == expected


@settings(max_examples=300, deadline=None)
@given(st.lists(MOUNTS, max_size=3), st.lists(MOUNTS, min_size=1, max_size=2))
def test_prepared_mount_merge_equals_the_plain_rule(existing, mounts):
    if len({m["name"] for m in mounts}) < len(mounts) or len({m["mountPath"] for m in mounts}) < len(mounts):
        mounts = mounts[:1]
    presets = [preset("p", volumes=[{"name": m["name"]} for m in mounts], volumeMounts=mounts)]
    expected = merge_keyed(VOLUME_MOUNTS, existing, presets, 'container "c"')
    assert merge_prepared(prepare(VOLUME_MOUNTS, presets), existing, 'container "c"') == expected
