"""A real Kubernetes control plane as local background processes, without Docker.

The binaries (kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, etcd, kwok,
helm) are built once from the Go module proxy into a cache outside the repository
(`build`). `control_plane.up` starts etcd, the API server, the controller manager, the
scheduler and kwok, which fakes nodes so scheduled pods turn Running and Ready; `fixtures`
offers the same cluster to pytest.
"""
