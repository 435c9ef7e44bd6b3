#!/usr/bin/env bash
# The browser tests drive Debian's Chromium. Install it when it is missing and we can (root with
# apt-get); otherwise say so and carry on: the browser tests then skip locally and fail in CI.
set -u
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing Chromium for the browser tests (apt-get)..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null && apt-get install -y -qq chromium >/dev/null && exit 0
  echo "note: could not install Chromium with apt-get; browser tests will be skipped (or fail in CI)." >&2
  exit 0
fi
echo "note: /usr/bin/chromium not found and cannot be installed here; browser tests will be skipped (or fail in CI)." >&2
exit 0
