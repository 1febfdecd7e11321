// Package browsertest holds end-to-end tests of the browser SDK (internal/web) in headless
// Chromium driven by chromedp: browser ↔ browser (data channels, fake-camera video) and
// browser ↔ Go SDK. They need /usr/bin/chromium (scripts/install-test-deps.sh); without it they
// skip, except under CI=true where they fail.
package browsertest
