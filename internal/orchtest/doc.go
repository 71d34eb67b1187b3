// Package orchtest holds the tests of the orchestrator deployments:
// deploy/k8s (the Kubernetes manifests, rendered with kustomize, decoded
// strictly with the official API types and checked against the pods' real
// flags and endpoints) and deploy/swarm/stack.yml (deployed for real on a
// single-node Docker swarm where an engine runs). It has no non-test code.
package orchtest
