"""The engine's shortcuts give exactly what the plain rules give.

``PresetIndex.candidates`` narrows presets (namespaced and cluster-wide) by one required label;
it must be invisible in results.
"""

from hypothesis import given, settings
from hypothesis import strategies as st
from support.presets import cluster_preset, preset

from presets.admission import PresetIndex

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


@settings(max_examples=300, deadline=None)
@given(
    st.lists(selectors(), max_size=8),
    st.lists(st.tuples(selectors(), selectors()), max_size=8),
    LABELS,
    LABELS,
)
def test_candidates_hold_every_cluster_and_namespaced_preset_that_selects_the_pod(
    namespaced, clustered, labels, namespace_labels
):
    env = [{"name": "A", "value": "1"}]
    presets = [preset(f"p{i}", selector=s, env=env) for i, s in enumerate(namespaced)]
    presets += [
        cluster_preset(f"c{i}", selector=s, namespaceSelector=n, env=env)
        for i, (s, n) in enumerate(clustered)
    ]
    index = PresetIndex.build(presets)

    def selecting(namespaced_ok: bool) -> set[str]:
        return {
            p.ref
            for p in presets
            if p.selector.matches(labels)
            and (namespaced_ok if not p.is_cluster else p.namespace_selector.matches(namespace_labels))
        }

    assert selecting(True) <= {p.ref for p in index.candidates("namespace", labels, namespace_labels)}
    assert selecting(True) <= {p.ref for p in index.candidates("namespace", labels)}
    assert selecting(False) <= {p.ref for p in index.candidates("elsewhere", labels, namespace_labels)}
