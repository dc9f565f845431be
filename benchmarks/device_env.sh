#!/usr/bin/env bash
# Set up worldgen on a bare GPU machine whose Python already has torch and transformers (no network).
# Source it from the repository root:  . benchmarks/device_env.sh
#  - installs the wheels carried in .whl/ (diffusers and its missing pieces) into /tmp/site;
#  - installs worldgen itself there (pip, no build isolation); if the machine's setuptools cannot
#    build it, links the source tree into the same layout pip would (worldgen.backends -> backends/,
#    and so on) and writes the entry points the plugin registry reads;
#  - checks that the JointNet backend and the depth modality import.
set -u
SITE=/tmp/site
python3 -m pip install -q --no-index --no-deps --no-cache-dir --upgrade --target "$SITE" .whl/*.whl \
  || return 1 2>/dev/null || exit 1
export PYTHONPATH="$SITE"
if ! python3 -m pip install -q --no-index --no-deps --no-build-isolation --upgrade --target "$SITE" . \
     >/tmp/worldgen-install.log 2>&1; then
  echo "pip could not build worldgen here (tail of the log below); linking the source tree instead" >&2
  tail -3 /tmp/worldgen-install.log >&2
  mkdir -p "$SITE/worldgen-0.1.0.dist-info"
  rm -rf "$SITE/worldgen" && cp -r worldgen "$SITE/worldgen"
  for part in backends plugins exporters; do ln -sfn "$PWD/$part" "$SITE/worldgen/$part"; done
  printf 'Metadata-Version: 2.1\nName: worldgen\nVersion: 0.1.0\n' > "$SITE/worldgen-0.1.0.dist-info/METADATA"
  python3 - "$SITE/worldgen-0.1.0.dist-info/entry_points.txt" <<'EOF'
import re, sys
text = open("pyproject.toml").read()
out = []
for group, body in re.findall(r'\[project\.entry-points\."([^"]+)"\]\n(.*?)(?=\n\[|\Z)', text, re.S):
    out.append(f"[{group}]")
    out += [line.replace('"', "").strip() for line in body.splitlines() if "=" in line]
open(sys.argv[1], "w").write("\n".join(out) + "\n")
EOF
fi
(cd /tmp && python3 -c "import torch, worldgen.backends.jointnet.backend, worldgen.registry as r; \
print('worldgen ok: torch', torch.__version__, '| depth modality:', r.get_registry().modality('depth').name)") \
  || return 1 2>/dev/null || exit 1
