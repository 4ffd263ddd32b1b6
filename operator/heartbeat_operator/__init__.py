"""The HeartbeatSimulation operator: simulated fleets of devices on Kubernetes, run by kopf.

A user applies::

    apiVersion: heartbeat.dev/v1alpha1
    kind: HeartbeatSimulation
    metadata: {name: ward-7}
    spec: {customers: 1000, replicas: 4}

and the operator runs four generator pods (``heartbeat produce``) that between them
simulate customers 1..1000, each pod a disjoint slice, together exactly all of them.

Design, and why:

- **One StatefulSet per simulation** (``manifests``), owned through an ownerReference
  (``controller``, ``blockOwnerDeletion``) so deleting the simulation deletes it.
  A StatefulSet's pods have stable ordinals, ``<name>-0`` .. ``<name>-(n-1)``; the
  producer reads its ordinal from HOSTNAME and ``customer_slice`` turns it, with
  PRODUCER_CUSTOMERS and PRODUCER_SHARD_COUNT, into its slice. A restarted pod keeps its
  slice, one workload is all there is to watch, and scaling is one field (the CRD's scale
  subresource points at it). Changing ``customers`` or ``replicas`` changes the pods'
  environment, so the StatefulSet rolls them; pausing only scales to zero and back.
- **Level-based reconciliation** (``reconcile``): every trigger reads the simulation, its
  StatefulSet and pods afresh and converges; a resync loop does so for every simulation
  every interval, so a StatefulSet someone edits or deletes is put back (reported as a
  ``DriftRepaired`` Event, a log warning and ``heartbeat_operator_drift_repaired_total``)
  even when no event arrives. No finalizers: see ``handlers``.
- **Specs the schema lets through but that cannot run as written** (``spec``): more
  replicas than customers runs one replica per customer and sets Ready=False with reason
  ``TooManyReplicas``; nothing is retried in a loop and nothing crashes. A spec that fails
  validation outright (only possible when the resource predates its CRD's schema) leaves
  the StatefulSet untouched, with reason ``InvalidSpec``.
- **Status** (``status``) is written through the status subresource by the operator only
  and says what runs: ``observedGeneration``, ``replicas``, ``readyReplicas``,
  ``customers`` (counted from the ready pods' own environment), ``selector`` (for the
  scale subresource), and the ``Ready``, ``Progressing`` and ``Paused`` conditions.
- **Kafka settings** of the generators are the operator's own: the KAFKA_* connection
  settings in its environment are copied into the pod template, except the SASL password,
  which the pods read from the Secret named by OPERATOR_KAFKA_SASL_SECRET, and the TLS
  files, mounted from OPERATOR_KAFKA_TLS_SECRET. Both Secrets live in the simulation's
  namespace.
- Only ``kube`` imports the Kubernetes client (``settings`` borrows its quantity parser);
  ``spec``, ``manifests`` and ``status`` are pure and table-tested; ``handlers`` holds the
  kopf functions; ``__main__`` starts it all.
"""
