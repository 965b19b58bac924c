#!/usr/bin/env bash
# Screenshot a causalmtl report page in a real headless browser (Chromium), to check how it
# renders: table alignment, verdict colours, figures.
#
#   bash scripts/screenshot_report.sh runs/report.html report.png [WIDTH [HEIGHT]]
#
# Needs Chromium (Debian: `apt-get install -y chromium`; `chromium-browser` or Google Chrome
# also work, or set CHROMIUM=/path/to/binary). The page is self-contained (figures embedded),
# so no server is needed. The default 1280 x 4000 window captures the top of the page (the
# overview, "At a glance" and the first section); pass a larger HEIGHT for more.
set -euo pipefail
if [[ $# -lt 2 ]]; then
    sed -n '2,11p' "$0" >&2
    exit 2
fi
html=$(realpath "$1")
png=$(realpath -m "$2")
width=${3:-1280}
height=${4:-4000}
[[ -f "$html" ]] || { echo "screenshot_report.sh: no such file: $1" >&2; exit 2; }
browser=${CHROMIUM:-}
if [[ -z "$browser" ]]; then
    for b in chromium chromium-browser google-chrome; do
        if command -v "$b" >/dev/null 2>&1; then browser=$b; break; fi
    done
fi
[[ -n "$browser" ]] || { echo "screenshot_report.sh: Chromium not found (apt-get install -y chromium, or set CHROMIUM)" >&2; exit 2; }
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
"$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars --user-data-dir="$profile" \
    --window-size="${width},${height}" --screenshot="$png" "file://$html" >/dev/null 2>&1
[[ -s "$png" ]] || { echo "screenshot_report.sh: $browser wrote no screenshot" >&2; exit 1; }
echo "$png"
