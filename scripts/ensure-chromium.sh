#!/bin/sh
# Make headless Chromium available for the report.html browser test (tests/test_report_html.py).
#
# Never fails the build: when Chromium cannot be installed (not root, no apt-get, offline), it
# says so and exits 0; the browser test then skips with a visible reason and the rest still runs.
set -u

have_chromium() {
    command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1
}

if have_chromium; then
    exit 0
fi
if [ "$(id -u 2>/dev/null || echo 1)" != 0 ]; then
    echo "ensure-chromium: chromium not found and not root; the report.html browser test will be skipped" >&2
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-chromium: chromium not found and no apt-get; the report.html browser test will be skipped" >&2
    exit 0
fi
echo "ensure-chromium: installing chromium (apt-get) for the report.html browser test" >&2
if DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null 2>&1 \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1 \
    && have_chromium; then
    exit 0
fi
echo "ensure-chromium: could not install chromium; the report.html browser test will be skipped" >&2
exit 0
