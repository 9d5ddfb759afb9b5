"""The development kit: the local stand-ins for the clouds and the local region.

Used by the tests, `make demo` and the benches; shipped in neither the wheel nor the image.

- `localcloud`: terraform against a loopback moto_server (with the API moto lacks).
- `images`: the service image built from `service/Dockerfile` on a local CPU engine base.
- `registry`: a local container registry with credentials, which the boot script logs in to.
- `cloudmeta`: the instance metadata services (AWS IMDSv2, GCP) and the GCP APIs the boot
  script and its agents call (Secret Manager, Cloud Monitoring, Cloud Storage).
- `systemctl`: the systemd commands the boot script runs, for a machine without systemd.
- `machine`: one local instance booted from its rendered user data.
- `localregion`: instances behind HAProxy, as the cloud load balancer sees them.
- `redis_server`: a throwaway redis-server (the region-wide cache and rate-limit tier).
- `motoext`, `containers`: the API moto lacks; podman configured as a local instance's docker.
- `proc`: free ports, bounded waits and polls, stopping a process.
"""
