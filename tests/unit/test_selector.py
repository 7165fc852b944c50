"""Label selectors with Kubernetes' semantics, edge cases decided on purpose."""

import pytest

from presets.selector import describe_requirement, parse_selector


def select(raw, labels):
    selector, problems = parse_selector(raw, "spec.selector")
    assert problems == []
    return selector.matches(labels)


@pytest.mark.parametrize(
    ("raw", "labels", "expected"),
    [
        pytest.param(None, {}, True, id="nil-selector-matches-everything"),
        pytest.param({}, {}, True, id="empty-selector-matches-everything"),
        pytest.param({"matchLabels": {}}, {"a": "b"}, True, id="empty-matchLabels-matches-everything"),
        pytest.param(
            {"matchLabels": {"app": "web"}}, {"app": "web", "x": "y"}, True, id="matchLabels-subset"
        ),
        pytest.param({"matchLabels": {"app": "web"}}, {"app": "api"}, False, id="matchLabels-other-value"),
        pytest.param({"matchLabels": {"app": "web"}}, {}, False, id="matchLabels-missing-key"),
        pytest.param({"matchLabels": {"app": ""}}, {"app": ""}, True, id="matchLabels-empty-value"),
        pytest.param(
            {"matchExpressions": [{"key": "a", "operator": "In", "values": ["1", "2"]}]},
            {"a": "2"},
            True,
            id="In-listed",
        ),
        pytest.param(
            {"matchExpressions": [{"key": "a", "operator": "In", "values": ["1"]}]},
            {},
            False,
            id="In-absent-key",
        ),
        pytest.param(
            {"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]},
            {},
            True,
            id="NotIn-absent-key-matches",
        ),
        pytest.param(
            {"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]},
            {"a": "1"},
            False,
            id="NotIn-listed",
        ),
        pytest.param(
            {"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {"a": ""}, True, id="Exists"
        ),
        pytest.param(
            {"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]},
            {"a": "x"},
            False,
            id="DoesNotExist",
        ),
        pytest.param(
            {
                "matchLabels": {"app": "web"},
                "matchExpressions": [{"key": "env", "operator": "In", "values": ["prod"]}],
            },
            {"app": "web", "env": "dev"},
            False,
            id="labels-and-expressions-are-ANDed",
        ),
    ],
)
def test_selector_matches_like_kubernetes(raw, labels, expected):
    assert select(raw, labels) is expected


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param([], id="not-a-mapping"),
        pytest.param({"matchLabels": {"-bad": "x"}}, id="bad-key"),
        pytest.param({"matchLabels": {"a/": "x"}}, id="empty-name-after-prefix"),
        pytest.param({"matchLabels": {"a": "x" * 64}}, id="value-too-long"),
        pytest.param(
            {"matchExpressions": [{"key": "a", "operator": "in", "values": ["x"]}]}, id="operator-case"
        ),
        pytest.param({"matchExpression": []}, id="misspelt-field"),
    ],
)
def test_invalid_selectors_are_problems_not_crashes(raw):
    _, problems = parse_selector(raw, "spec.selector")
    assert problems and all(path.startswith("spec.selector") for path, _ in problems)


def test_unmet_requirements_are_described_in_kubectl_syntax():
    selector, _ = parse_selector(
        {
            "matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["b", "a"]}],
        },
        "s",
    )
    assert [describe_requirement(r) for r in selector.unmet({"env": "a"})] == ["app=web", "env notin (a,b)"]


@pytest.mark.parametrize(
    "raw",
    [{"matchLabels": {"app\n": "x"}}, {"matchLabels": {"app": "web\n"}}],
    ids=["key-with-trailing-newline", "value-with-trailing-newline"],
)
def test_a_trailing_newline_is_not_a_valid_label(raw):
    _, problems = parse_selector(raw, "spec.selector")
    assert problems
