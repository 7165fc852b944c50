"""``podpreset controller``: beside the webhook, never on the admission path.

- ``command``: the subcommand's flags, settings and process (signals, the health port);
- ``election``: leader election on a coordination.k8s.io/v1 Lease (only the leader acts);
- ``loop``: runs the registered reconcile passes while leading;
- ``passes``: the list of passes (status, rollout) — where a new pass is registered;
- ``api``: the one, counted, way to the API server.
"""
