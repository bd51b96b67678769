#!/usr/bin/env bash
# The chart keeps copies of files that live elsewhere in the repository, because Helm reads only
# files inside the chart directory:
#   deploy/catalogue.yaml   -> deploy/chart/files/catalogue.yaml  (the catalogue ConfigMap)
#   deploy/crds/*.yaml      -> deploy/chart/crds/                 (installed by Helm before the templates)
#   bash hack/helm/sync.sh           refresh the copies
#   bash hack/helm/sync.sh --check   fail (exit 1) if a copy differs from its source, or the chart
#                                    has a CRD that deploy/crds no longer has
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"

check=0
case "${1:-}" in
  --check) check=1 ;;
  "") ;;
  *) echo "sync.sh: unknown argument $1 (use --check or nothing)" >&2; exit 2 ;;
esac

pairs=("deploy/catalogue.yaml deploy/chart/files/catalogue.yaml")
for f in deploy/crds/*.yaml; do pairs+=("$f deploy/chart/crds/$(basename "$f")"); done

bad=0
for p in "${pairs[@]}"; do
  src="${p% *}"; dst="${p#* }"
  if cmp -s "$src" "$dst"; then continue; fi
  if [[ $check == 1 ]]; then
    echo "sync.sh: $dst differs from $src; run 'bash hack/helm/sync.sh'" >&2
    diff -u "$dst" "$src" | head -n 20 >&2 || true
    bad=1
  else
    mkdir -p "$(dirname "$dst")"
    cp "$src" "$dst"
    echo "updated $dst from $src"
  fi
done
for f in deploy/chart/crds/*.yaml; do
  [[ -e "$f" ]] || continue
  [[ -f "deploy/crds/$(basename "$f")" ]] && continue
  if [[ $check == 1 ]]; then
    echo "sync.sh: $f has no source in deploy/crds/; run 'bash hack/helm/sync.sh'" >&2
    bad=1
  else
    rm -f "$f"
    echo "removed $f (not in deploy/crds/)"
  fi
done
[[ $bad == 0 ]] || exit 1
[[ $check == 1 ]] && echo "chart copies match deploy/catalogue.yaml and deploy/crds/ (${#pairs[@]} files)"
exit 0
