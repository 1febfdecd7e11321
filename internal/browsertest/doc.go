// Package browsertest holds end-to-end tests of the browser SDK (internal/web) in headless
// Chromium driven by chromedp: browser ↔ browser (data channels, fake-camera video) and
// browser ↔ Go SDK, the web app, and the web app at an https origin that is not localhost (a
// test CA trusted through the NSS database of the browser's HOME: https_test.go). They need
// /usr/bin/chromium, and certutil for the https test (scripts/install-test-deps.sh); without
// them they skip, except under CI=true where they fail.
package browsertest
