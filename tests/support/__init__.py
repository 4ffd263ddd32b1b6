"""What the tests share: waiting for a condition (`polling`) and kubectl (`kube`)."""
