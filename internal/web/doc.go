// Package web serves Switchboard's browser SDK: the ES module /sdk/switchboard.js (see
// docs/browser-sdk.md) with the sibling modules it imports (/sdk/sdk-*.js), and /sdk/test.html,
// the page the browser tests drive. The files are embedded in the binary with go:embed; there
// is no build step and no bundler.
package web
