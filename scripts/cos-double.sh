#!/usr/bin/env bash
# Run the IBM COS immutability double on 127.0.0.1:${PORT:-5001} in the foreground: moto's S3 server
# plus IBM's legacy retention API (?protection, ?legalHold, ?extendRetention, Retention-* headers).
# Give a bucket a policy with, for example:
#   python3 - <<'PY'
#   import base64, hashlib, urllib.request
#   x = b"<ProtectionConfiguration><Status>Retention</Status><MinimumRetention><Days>0</Days></MinimumRetention><DefaultRetention><Days>1</Days></DefaultRetention><MaximumRetention><Days>365</Days></MaximumRetention></ProtectionConfiguration>"
#   r = urllib.request.Request("http://127.0.0.1:5001/my-bucket?protection", data=x, method="PUT",
#                              headers={"Content-MD5": base64.b64encode(hashlib.md5(x).digest()).decode()})
#   urllib.request.urlopen(r)
#   PY
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >&2
exec .venv/bin/python tests/support/cos_double.py "${PORT:-5001}" --forever
