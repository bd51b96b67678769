#!/usr/bin/env bash
# Prints the server container's environment exactly as the chart renders it, one NAME=value a
# line (shell-quoted), so a test can start server processes configured as the chart configures
# the pods. Arguments are passed to `helm template` (e.g. -n <namespace> -f values.yaml --set ...).
# A DATABASE_URL from a Secret is resolved when the chart made that Secret (database.url);
# otherwise it is printed as a comment and the caller sets DATABASE_URL itself. Outside a pod,
# override what only exists in one: HEXA_CATALOGUE (the mounted ConfigMap) and LISTEN_ADDR.
#   eval "$(bash hack/helm/pod-env.sh -n hexabase --set database.url=postgres://...)"
# Env: HEXA_CACHE (hack/env.sh).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../env.sh
source "$HERE/../env.sh"
helm="$(bash "$HERE/build.sh" | tail -n1)"
"$helm" template hexa "$HERE/../../deploy/chart" "$@" | python3 -c '
import shlex, sys
try:
    import yaml
except ImportError:
    yaml = None
text = sys.stdin.read()
if yaml is None:
    sys.exit("pod-env.sh: needs python3-yaml (apt-get install python3-yaml)")
docs = [d for d in yaml.safe_load_all(text) if d]
dep = next(d for d in docs if d["kind"] == "Deployment")
secrets = {d["metadata"]["name"]: d.get("stringData", {}) for d in docs if d["kind"] == "Secret"}
for e in dep["spec"]["template"]["spec"]["containers"][0].get("env", []):
    if "value" in e:
        print("export %s=%s" % (e["name"], shlex.quote(str(e["value"]))))
    else:
        ref = e.get("valueFrom", {}).get("secretKeyRef", {})
        v = secrets.get(ref.get("name"), {}).get(ref.get("key"))
        if v is not None:
            print("export %s=%s" % (e["name"], shlex.quote(v)))
        else:
            print("# %s comes from Secret %s key %s: set it yourself" % (e["name"], ref.get("name"), ref.get("key")))
'
