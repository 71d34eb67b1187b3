// Package deploytest holds the tests of steadfast's deployment files:
//
//   - compose_test.go loads docker-compose.yml with the Compose specification's
//     own Go loader (compose-go/v2) and checks the services, their environment,
//     healthchecks, ports, profiles and JOIN seeds, plus the Dockerfile, the
//     Prometheus configuration and the Grafana dashboard it refers to;
//   - scripts_test.go runs `bash -n` and shellcheck on scripts/*.sh;
//   - netns_test.go drives scripts/netns-cluster.sh, which runs the pods in
//     Linux network namespaces (one per host, each with its own IP), kills a
//     subscriber host and replaces it on a new host with a new IP and an empty
//     disk, and checks from the pods' metrics that the replacement restored its
//     state from a peer and that nothing was lost or duplicated.
//
// The sfprobe subdirectory is a tiny HTTP client/server used inside the
// namespaces, where curl may be missing.
package deploytest
