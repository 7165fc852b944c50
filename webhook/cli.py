"""The ``podpreset`` command: apply, review, validate, migrate (offline), rollout, serve and controller.

``apply``, ``review``, ``validate`` and ``migrate`` (without ``--kubeconfig``) import neither Flask
nor the Kubernetes client, so they start fast; ``serve`` and ``controller`` import theirs lazily.
Input and usage errors exit 2 with one line per problem on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from presets.admission import (
    BadReview,
    PresetIndex,
    admit,
    check_pod,
    decode_review,
    encode_review,
)
from presets.engine import Outcome, PresetResult, apply_presets
from presets.limits import DEFAULT_MAX_PRESET_BYTES, MAX_DEPTH
from presets.migrate import Migrated, MigrationError, migrate_document
from presets.model import (
    DEFAULT_PROTECTED,
    DEFAULT_VOLUME_TYPES,
    RESTRICTED_VOLUME_TYPES,
    Problem,
    Protected,
    VolumeTypes,
    protected_problems,
    volume_type_problems,
)
from presets.names import is_dns_label
from presets.namespaces import NamespaceLabels, labels_of
from webhook.sources.documents import (
    LoadResult,
    SourceError,
    files_of,
    load_presets,
    parse_documents,
    read_documents,
    read_text,
)

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2

TEMPLATE_PATHS: dict[str, tuple[str, ...]] = {
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "ReplicationController": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}


class UsageError(Exception):
    """Bad input or arguments: printed as one line, exit status 2."""


def build_parser(with_serve: bool = True, with_controller: bool = True) -> argparse.ArgumentParser:
    """The argument parser; ``serve``'s and ``controller``'s options (which import the server and
    the controller) only when asked."""
    parser = argparse.ArgumentParser(prog="podpreset", description="PodPresets for today's Kubernetes.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    apply = commands.add_parser("apply", help="print an object as the webhook would admit it")
    where = apply.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "-f",
        "--filename",
        dest="presets",
        action="append",
        metavar="PRESETS",
        help="preset file or directory (repeatable)",
    )
    where.add_argument(
        "--kubeconfig",
        metavar="PATH",
        help="use the presets and namespace labels of this cluster instead (read-only: list calls)",
    )
    apply.add_argument("--context", metavar="NAME", help="the kubeconfig context to use with --kubeconfig")
    apply.add_argument("-n", "--namespace", help="namespace of the object and of presets that name none")
    apply.add_argument("-o", "--output", choices=("yaml", "json", "patch"), default="yaml")
    apply.add_argument(
        "--explain", action="store_true", help="say on stderr why each preset did or did not apply"
    )
    _add_protected(apply)
    _add_limits(apply)
    apply.add_argument("object", metavar="OBJECT", help="a Pod or workload file, or - for standard input")

    review = commands.add_parser("review", help="print the AdmissionReview response the webhook would return")
    review.add_argument("-f", "--filename", dest="presets", action="append", required=True, metavar="PRESETS")
    _add_protected(review)
    _add_limits(review)
    review.add_argument("review", metavar="REVIEW", help="an AdmissionReview file, or - for standard input")

    validate = commands.add_parser("validate", help="check preset files; exit 1 listing every problem")
    _add_protected(validate)
    _add_limits(validate)
    validate.add_argument("paths", nargs="+", metavar="PRESETS")

    migrate = commands.add_parser(
        "migrate",
        help="convert settings.k8s.io and redhat-cop PodPresets and Kubeflow PodDefaults to podpreset.dev/v1",
    )
    origin = migrate.add_mutually_exclusive_group(required=True)
    origin.add_argument(
        "-f",
        "--filename",
        dest="paths",
        action="append",
        metavar="FILE|DIR|-",
        help="a file, a directory, or - for standard input (repeatable)",
    )
    origin.add_argument(
        "--kubeconfig", metavar="PATH", help="list the objects in this cluster instead (read-only)"
    )
    migrate.add_argument("--context", metavar="NAME", help="the kubeconfig context to use with --kubeconfig")
    migrate.add_argument(
        "-n",
        "--namespace",
        help="files: the namespace of objects that name none; a cluster: list only this namespace",
    )
    migrate.add_argument(
        "--strict",
        action="store_true",
        help="exit 1, printing no objects, when any field cannot be expressed",
    )
    migrate.add_argument("-o", "--output", choices=("yaml", "json"), default="yaml")

    rollout = commands.add_parser(
        "rollout",
        help="roll opted-in workloads whose presets changed (one pass), or with --dry-run say which would",
    )
    rollout.add_argument(
        "--kubeconfig", metavar="PATH", help="the cluster (default: the in-cluster configuration)"
    )
    rollout.add_argument("--context", metavar="NAME", help="the kubeconfig context to use with --kubeconfig")
    rollout.add_argument("-n", "--namespace", help="only the workloads of this namespace (default: all)")
    rollout.add_argument(
        "--dry-run", action="store_true", help="list what would roll and why; change nothing"
    )
    rollout.add_argument(
        "--rollout-per-minute",
        type=_at_least_one("a whole number"),
        default=10,
        metavar="N",
        help="roll at most N workloads (the rest wait for the next pass); default 10",
    )
    _add_protected(rollout)
    _add_limits(rollout)

    serve = commands.add_parser("serve", help="serve the webhook over TLS with gunicorn")
    if with_serve:
        from webhook.server.serve import add_serve_arguments

        add_serve_arguments(serve)
    controller = commands.add_parser(
        "controller", help="write preset status (and roll opted-in workloads), leader-elected"
    )
    if with_controller:
        from webhook.controller.command import add_controller_arguments

        add_controller_arguments(controller)
    return parser


def _add_protected(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--protected",
        action="append",
        metavar="NAME_OR_PREFIX",
        help="an env name, or a prefix ending in '*', that no preset may inject (repeatable or "
        f"comma-separated; replaces the default {DEFAULT_PROTECTED.describe()}; --protected= "
        "protects nothing, as for serve)",
    )


def _add_limits(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--namespaced-volume-types",
        action="append",
        metavar="TYPE",
        help="volume types a PodPreset may inject (repeatable or comma-separated, '*' for any; "
        f"ClusterPodPresets may inject any); default {','.join(RESTRICTED_VOLUME_TYPES)}, as for serve",
    )
    parser.add_argument(
        "--max-preset-bytes",
        type=_at_least_one("a number of bytes"),
        default=DEFAULT_MAX_PRESET_BYTES,
        metavar="N",
        help=f"a preset larger than this (compact JSON) is invalid; default {DEFAULT_MAX_PRESET_BYTES}, "
        "as for serve",
    )


def _at_least_one(what: str) -> Callable[[str], int]:
    """An argparse type: a whole number of at least 1; WHAT is how the error calls it."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"must be at least 1, got {text!r}")
        return value

    return parse


def volume_types_of(values: Sequence[str] | None) -> VolumeTypes:
    """The ``--namespaced-volume-types`` values, or the default when the flag was not given.
    An empty value (``--namespaced-volume-types=``) allows no volume in a PodPreset, as for serve."""
    if values is None:
        return DEFAULT_VOLUME_TYPES
    try:
        return VolumeTypes.parse(part for value in values for part in value.split(",") if part.strip())
    except ValueError as exc:
        raise UsageError(f"--namespaced-volume-types: {exc}") from None


def protected_of(values: Sequence[str] | None) -> Protected:
    """The ``--protected`` values, or the default when the flag was not given at all.

    An empty value (``--protected=``) protects nothing, exactly as ``serve --protected=`` does, so
    that ``validate`` with the server's setting refuses what the server would skip.
    """
    if values is None:
        return DEFAULT_PROTECTED
    entries = [part for value in values for part in value.split(",") if part.strip()]
    try:
        return Protected.parse(entries)
    except ValueError as exc:
        raise UsageError(f"--protected: {exc}") from None


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(
        with_serve=bool(argv) and argv[0] == "serve", with_controller=bool(argv) and argv[0] == "controller"
    )
    args = parser.parse_args(argv)
    try:
        if args.command == "apply":
            return run_apply(args, sys.stdout, sys.stderr)
        if args.command == "review":
            return run_review(args, sys.stdout)
        if args.command == "validate":
            return run_validate(
                args.paths,
                sys.stdout,
                sys.stderr,
                protected=protected_of(args.protected),
                volume_types=volume_types_of(args.namespaced_volume_types),
                max_preset_bytes=args.max_preset_bytes,
            )
        if args.command == "migrate":
            return run_migrate(args, sys.stdout, sys.stderr)
        if args.command == "rollout":
            return run_rollout(args, sys.stdout, sys.stderr)
        if args.command == "controller":
            from webhook.controller.command import run_controller

            return run_controller(args)
        from webhook.server.serve import run_serve

        return int(run_serve(args))
    except (UsageError, SourceError, BadReview) as exc:
        print(f"podpreset {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        return EXIT_OK
    except KeyboardInterrupt:
        return 130


def load_or_fail(
    paths: Sequence[str], default_namespace: str, max_preset_bytes: int = DEFAULT_MAX_PRESET_BYTES
) -> LoadResult:
    """Valid presets and Namespace labels of ``paths``, or ``UsageError`` listing every problem."""
    result = load_presets(paths, default_namespace, max_preset_bytes=max_preset_bytes)
    if result.problems:
        lines = "\n".join(str(p) for p in result.problems)
        raise UsageError(f"invalid presets (fix them or run podpreset validate):\n{lines}")
    if not result.presets:
        raise UsageError(f"no PodPreset documents in {', '.join(paths)}")
    return result


def run_validate(
    paths: Sequence[str],
    out: TextIO,
    err: TextIO,
    *,
    protected: Protected = DEFAULT_PROTECTED,
    volume_types: VolumeTypes = DEFAULT_VOLUME_TYPES,
    max_preset_bytes: int = DEFAULT_MAX_PRESET_BYTES,
) -> int:
    for path in paths:
        files_of(path)  # a path that does not exist is a usage error (exit 2), not a finding
    problems: list[str] = []
    count = 0
    for path in paths:
        try:
            result = load_presets([path], max_preset_bytes=max_preset_bytes)
        except SourceError as exc:
            problems.append(str(exc))
            continue
        count += len(result.presets)
        problems.extend(str(p) for p in result.problems)
        for preset in result.presets:
            problems.extend(
                str(Problem(source=preset.source, document=0, name=preset.name, field=f, message=m)).replace(
                    ": document 0", ""
                )
                for f, m in (
                    *protected_problems(preset, protected),
                    *volume_type_problems(preset, volume_types),
                )
            )
    if not problems and count == 0:
        problems.append(
            f"{', '.join(paths)}: no PodPreset documents found (files are *.yaml, *.yml or *.json)"
        )
    for line in problems:
        print(line, file=out)
    if problems:
        print(f"{len(problems)} problem(s) found", file=err)
        return EXIT_INVALID
    print(f"{count} preset(s) valid", file=err)
    return EXIT_OK


def run_review(args: argparse.Namespace, out: TextIO) -> int:
    loaded = load_or_fail(args.presets, "default", args.max_preset_bytes)
    index = PresetIndex.build(loaded.presets)
    text = read_text(args.review)
    try:
        body = decode_review(text.encode("utf-8"))
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"{args.review}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from exc
    except RecursionError:
        raise UsageError(f"{args.review}: nests deeper than {MAX_DEPTH} levels") from None
    try:
        decision = admit(
            body,
            index,
            namespaces=loaded.namespaces,
            protected=protected_of(args.protected),
            namespaced_volume_types=volume_types_of(args.namespaced_volume_types),
        )
    except BadReview as exc:
        raise UsageError(f"{args.review}: {exc}") from None
    out.write(encode_review(decision.response).decode("utf-8"))
    if out.isatty():
        out.write("\n")
    return EXIT_OK


def presets_for_apply(args: argparse.Namespace, err: TextIO) -> tuple[PresetIndex, NamespaceLabels, str]:
    """The presets and namespace labels ``apply`` previews against: from ``-f`` files (Namespace
    documents among them), or listed in the cluster; and the namespace of objects that name none
    (the kubeconfig context's, as for kubectl, else ``default``)."""
    if args.context and not args.kubeconfig:
        raise UsageError("--context: only with --kubeconfig")
    if not args.kubeconfig:
        loaded = load_or_fail(args.presets, args.namespace or "default", args.max_preset_bytes)
        return PresetIndex.build(loaded.presets), loaded.namespaces, "default"
    # Imported here: the offline paths never load the Kubernetes client.
    from webhook.sources.live import ClusterError, read_cluster

    try:
        state = read_cluster(args.kubeconfig, args.context, max_preset_bytes=args.max_preset_bytes)
    except ClusterError as exc:
        raise UsageError(str(exc)) from exc
    for line in state.problems:
        print(f"warning: skipped, as the webhook does: {line}", file=err)
    return PresetIndex.build(state.presets), state.namespaces, state.context_namespace or "default"


def run_apply(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    index, namespaces, default_namespace = presets_for_apply(args, err)
    protected = protected_of(args.protected)
    volume_types = volume_types_of(args.namespaced_volume_types)
    source = "<stdin>" if args.object == "-" else args.object
    documents = parse_documents(read_text(args.object), source)
    if not documents:
        raise UsageError(f"{source}: no object found")
    results: list[Any] = []
    for doc in documents:
        obj = doc.content
        where = f"{source}: document {doc.number}"
        if not isinstance(obj, dict):
            raise UsageError(f"{where}: expected a Kubernetes object, got {type(obj).__name__}")
        mutated, patch, outcome, namespace = apply_to_object(
            obj,
            index,
            args.namespace,
            where,
            namespaces=namespaces,
            protected=protected,
            volume_types=volume_types,
            default_namespace=default_namespace,
        )
        if args.explain:
            explain(outcome, namespace, index, where, err, namespaces=namespaces)
        results.append(patch if args.output == "patch" else mutated)
    write_output(results, args.output, out)
    return EXIT_OK


def apply_to_object(
    obj: dict[str, Any],
    index: PresetIndex,
    namespace_flag: str | None,
    where: str,
    *,
    namespaces: NamespaceLabels | None = None,
    protected: Protected = DEFAULT_PROTECTED,
    volume_types: VolumeTypes = DEFAULT_VOLUME_TYPES,
    default_namespace: str = "default",
) -> tuple[dict[str, Any], list[dict[str, Any]], Outcome, str]:
    """Mutate a Pod, or a workload's pod template, as a pod of its namespace would be."""
    kind = obj.get("kind", "Pod")
    if not isinstance(kind, str):
        raise UsageError(f"{where}: kind: expected a string, got {type(kind).__name__}")
    metadata = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    assert isinstance(metadata, dict)
    namespace = namespace_flag or metadata.get("namespace") or default_namespace
    if not isinstance(namespace, str):
        raise UsageError(f"{where}: metadata.namespace: expected a string")
    if kind == "Pod":
        path: tuple[str, ...] = ()
    elif kind in TEMPLATE_PATHS:
        path = TEMPLATE_PATHS[kind]
    else:
        kinds = ", ".join(["Pod", *TEMPLATE_PATHS])
        raise UsageError(f"{where}: kind {kind!r} has no pod template; expected one of {kinds}")
    pod: Any = obj
    for part in path:
        pod = pod.get(part) if isinstance(pod, dict) else None
    field = ".".join(path) or "pod"
    if not isinstance(pod, dict):
        raise UsageError(f"{where}: {field}: required for a {kind}")
    try:
        check_pod(pod, f"{where}: {field}")
    except BadReview as exc:
        raise UsageError(str(exc)) from exc
    outcome = apply_presets(
        pod,
        index.relevant(namespace),
        namespace=namespace,
        namespaces=namespaces or {},
        protected=protected,
        namespaced_volume_types=volume_types,
        explain=True,
    )
    prefix = "".join("/" + part for part in path)
    patch = [{**op, "path": prefix + op["path"]} for op in outcome.patch]
    mutated = outcome.pod
    for depth in range(len(path) - 1, -1, -1):
        parent: Any = obj
        for part in path[:depth]:
            parent = parent[part]
        mutated = {**parent, path[depth]: mutated}
    return mutated, patch, outcome, namespace


def explain(
    outcome: Outcome,
    namespace: str,
    index: PresetIndex,
    where: str,
    err: TextIO,
    *,
    namespaces: NamespaceLabels | None = None,
) -> None:
    """Plain words on why each preset that could apply in the namespace did or did not."""
    own = index.for_namespace(namespace)
    cluster = index.cluster_presets
    counted = f"{len(own)} preset(s)"
    if cluster:
        labels = labels_of(namespaces or {}, namespace)
        shown = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        counted += f"; the cluster has {len(cluster)} ClusterPodPreset(s); namespace labels: {shown}"
    print(f"{where}: namespace {namespace!r} has {counted}", file=err)
    if not own:
        others = sorted(ns for ns in index.by_namespace if ns != namespace)
        if others:
            print(
                f"  presets exist only in namespace(s) {', '.join(others)}; set metadata.namespace or -n",
                file=err,
            )
    if outcome.action == "skipped":
        print(f"  skipped: {outcome.reason}; no preset is applied to this pod", file=err)
        return
    for mismatch in outcome.mismatches:
        if mismatch.failed == "namespaceSelector":
            why = (
                f"namespace {namespace!r} does not satisfy its namespaceSelector {', '.join(mismatch.unmet)}"
            )
        else:
            why = f"the pod's labels do not satisfy {', '.join(mismatch.unmet)}"
            if mismatch.preset.startswith("clusterpodpreset/"):
                why = "its namespaceSelector matches, but " + why
        print(f"  {mismatch.preset}: not selected: {why}", file=err)
    for refusal in outcome.refusals:
        print(
            f"  {refusal.preset.ref}: selected, but not applied: {refusal.warning().partition(': ')[2]}",
            file=err,
        )
    for result in outcome.results:
        print(f"  {result.preset.ref}: {_explain_result(result, outcome)}", file=err)
        for container, reason in result.skipped_containers:
            print(f"    skips {container}: {reason}", file=err)
    for conflict in outcome.conflicts:
        print(f"  conflict: {conflict.warning()}", file=err)
    for note in outcome.notes:
        print(f"  warning: {note}", file=err)
    if outcome.action == "conflict":
        print(
            "  result: the pod is admitted unchanged (all or nothing); resolve the conflicts above", file=err
        )
    elif outcome.action == "rejected":
        print(f"  result: the pod is refused (HTTP 409): {outcome.rejection}", file=err)
    else:
        print(f"  result: {outcome.action} ({outcome.reason})", file=err)


def _explain_result(result: PresetResult, outcome: Outcome) -> str:
    preset = result.preset
    tail = f" [priority {preset.priority}, onConflict {preset.on_conflict}]"
    added = ", ".join(f"{n} {name}" for name, n in result.added.items() if n)
    added = added or "nothing new (everything it injects is already there)"
    if result.status == "conflict":
        effect = "the pod is refused" if preset.on_conflict == "Reject" else "no preset is applied"
        return f"selected, but conflicts ({preset.on_conflict}: {effect}){tail}"
    if result.status == "skipped-preset":
        return f"selected, but conflicts: left out (SkipPreset), the others still apply{tail}"
    if outcome.action in ("conflict", "rejected"):
        return f"selected, not applied because of a conflict{tail}"
    if result.status == "kept-existing":
        dropped = len(result.conflicts)
        return f"applied keeping {dropped} existing item(s) (KeepExisting); adds {added}{tail}"
    return f"applied; adds {added}{tail}"


def run_rollout(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """One rollout pass (``webhook.controller.rollout``), or with ``--dry-run`` what it would do:
    a line per opted-in workload that would roll, be recorded, wait or is held, then a summary.
    Exit 1 when a workload could not be patched."""
    if args.context and not args.kubeconfig:
        raise UsageError("--context: only with --kubeconfig")
    if args.namespace is not None and not is_dns_label(args.namespace):
        raise UsageError(
            f"-n {args.namespace!r}: a namespace is a DNS label (lowercase letters, digits, '-')"
        )
    # Imported here: the offline paths never load the Kubernetes client.
    from prometheus_client import CollectorRegistry

    from webhook.controller.api import KubeApi
    from webhook.controller.rollout import (
        ClusterError,
        Options,
        RateLimit,
        connect,
        describe_failure,
        run_pass,
    )

    options = Options(
        namespace=args.namespace,
        protected=protected_of(args.protected),
        namespaced_volume_types=volume_types_of(args.namespaced_volume_types),
        max_preset_bytes=args.max_preset_bytes,
    )
    try:
        api_client, server = connect(args.kubeconfig, args.context)
    except ClusterError as exc:
        raise UsageError(str(exc)) from None
    try:
        report = run_pass(
            KubeApi(api_client, CollectorRegistry()),
            options,
            RateLimit(args.rollout_per_minute),
            dry_run=args.dry_run,
        )
    except Exception as exc:  # the client's errors share no base class; one line, no traceback
        raise UsageError(describe_failure(exc, server)) from None
    finally:
        api_client.close()
    for line in report.problems:
        print(f"warning: skipped, as the webhook does: {line}", file=err)
    for result in report.results:
        if result.verdict != "unchanged":
            print(result.line(args.dry_run), file=out)
    print(report.summary(args.dry_run), file=err)
    return EXIT_INVALID if report.count("failed") else EXIT_OK


def run_migrate(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Convert every object read, print them, and name on stderr each field left behind. Any
    object that cannot be converted at all fails the run (exit 2) before anything is printed."""
    if args.context and not args.kubeconfig:
        raise UsageError("--context: only with --kubeconfig")
    if args.namespace is not None and not is_dns_label(args.namespace):
        raise UsageError(
            f"-n {args.namespace!r}: a namespace is a DNS label (lowercase letters, digits, '-')"
        )
    originals = _migrate_inputs(args, err)
    failures: list[str] = []
    results: list[tuple[str, Migrated]] = []
    for where, content in originals:
        try:
            results.append((where, migrate_document(content, namespace=args.namespace)))
        except MigrationError as exc:
            named = f"{where} ({_shown_name(exc.name)})" if exc.name and _is_document(where) else where
            failures.extend(f"{named}: {f}: {m}" if f else f"{named}: {m}" for f, m in exc.problems)
        except RecursionError:
            failures.append(f"{where}: nests deeper than {MAX_DEPTH} levels")
    seen: dict[tuple[str, str, str], str] = {}
    for where, migrated in results:
        if migrated.converted is None:
            continue
        key = (migrated.converted["kind"], migrated.namespace, migrated.name)
        if key in seen:
            failures.append(
                f"{_named(where, migrated)}: metadata.name: becomes the same {key[0]} "
                f"{'/'.join(filter(None, key[1:]))} as {seen[key]}; rename one of them"
            )
        seen.setdefault(key, _named(where, migrated))
    if len(failures) == 1:
        raise UsageError(failures[0])
    if failures:
        for line in failures:
            print(line, file=err)
        raise UsageError(f"{len(failures)} problems; nothing was converted")
    lost = left_out = 0
    converted: list[dict[str, Any]] = []
    for where, migrated in results:
        named = _named(where, migrated)
        for dropped in migrated.dropped:
            lost += 1
            print(f"{named}: {dropped.field}: not expressible in podpreset.dev/v1: {dropped.why}", file=err)
        if migrated.converted is None:
            left_out += 1
            print(
                f"{named}: not converted: nothing it injects can be expressed in podpreset.dev/v1", file=err
            )
        else:
            converted.append(migrated.converted)
    summary = f"{len(converted)} object(s) converted, {lost} field(s) not expressible"
    if left_out:
        summary += f", {left_out} object(s) left out with nothing to inject"
    if args.strict and (lost or left_out):
        print(f"{summary}; --strict: nothing printed", file=err)
        return EXIT_INVALID
    print(summary, file=err)
    if args.output == "json":
        value: Any = (
            converted[0] if len(converted) == 1 else {"apiVersion": "v1", "kind": "List", "items": converted}
        )
        out.write(json.dumps(value, indent=2) + "\n")
    elif converted:
        write_output(converted, "yaml", out)
    return EXIT_OK


def _migrate_inputs(args: argparse.Namespace, err: TextIO) -> list[tuple[str, Any]]:
    """``(where, object)`` for every document of ``-f`` paths, or every object listed in the cluster."""
    if not args.kubeconfig:
        documents = [(f"{d.source}: document {d.number}", d.content) for d in read_documents(args.paths)]
        if not documents:
            raise UsageError(
                f"{', '.join(args.paths)}: no documents found (files are *.yaml, *.yml or *.json)"
            )
        return documents
    # Imported here: the offline paths never load the Kubernetes client.
    from webhook.sources.legacy import ClusterError, list_legacy

    try:
        listed = list_legacy(args.kubeconfig, args.context, args.namespace)
    except ClusterError as exc:
        raise UsageError(str(exc)) from exc
    if listed.absent:
        print(f"not served by this cluster (skipped): {', '.join(listed.absent)}", file=err)
    found: list[tuple[str, Any]] = []
    for resource, obj in listed.objects:
        metadata = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
        assert isinstance(metadata, dict)
        key = "/".join(str(metadata.get(k) or "") for k in ("namespace", "name"))
        found.append((f"{resource.name} {_shown_name(key)}", obj))
    return found


def _named(where: str, migrated: Migrated) -> str:
    """A file document's position gets its name, as validate prints it; a listed object's
    position is its name already."""
    return f"{where} ({_shown_name(migrated.name)})" if migrated.name and _is_document(where) else where


def _is_document(where: str) -> bool:
    return re.search(r": document \d+$", where) is not None


def _shown_name(name: str) -> str:
    return name if len(name) <= 253 and name.isprintable() else repr(name[:253])


def write_output(results: list[Any], output: str, out: TextIO) -> None:
    if output in ("json", "patch"):
        value = results[0] if len(results) == 1 else results
        out.write(json.dumps(value, indent=2) + "\n")
        return
    import yaml

    base: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

    class Dumper(base):  # type: ignore[misc]
        """Presets' items are shared between containers; print each copy, never YAML aliases."""

        def ignore_aliases(self, data: Any) -> bool:
            return True

    out.write(yaml.dump_all(results, Dumper=Dumper, sort_keys=False, default_flow_style=False))


if __name__ == "__main__":
    sys.exit(main())
