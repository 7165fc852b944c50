"""The reconcile passes the controller runs while it leads: the one place a pass is registered.

To add a pass, write a class with ``name``, ``run(context) -> seconds`` and ``stop()``
(``webhook.controller.loop.ReconcilePass``) and append it in ``build_passes``; its flags go in
``webhook.controller.command.add_controller_arguments`` and its settings in ``ControllerSettings``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry

from presets.model import Protected, VolumeTypes
from webhook.controller.api import KubeApi
from webhook.controller.loop import ReconcilePass
from webhook.controller.rollout import Options, RolloutPass
from webhook.controller.status import StatusPass

if TYPE_CHECKING:
    from webhook.controller.command import ControllerSettings


def build_passes(
    settings: ControllerSettings, api: KubeApi, registry: CollectorRegistry
) -> list[ReconcilePass]:
    """Every pass, in the order they run each round."""
    passes: list[ReconcilePass] = [StatusPass(settings, api, registry)]
    rollout_options = Options(
        protected=Protected.parse(settings.protected),
        namespaced_volume_types=VolumeTypes.parse(settings.namespaced_volume_types),
        max_preset_bytes=settings.max_preset_bytes,
    )
    passes.append(
        RolloutPass(
            api, rollout_options, per_minute=settings.rollout_per_minute, interval=settings.rollout_interval
        )
    )
    return passes
