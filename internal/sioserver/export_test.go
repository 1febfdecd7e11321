package sioserver

// For the external tests (package sioserver_test), which run the whole server.

// NodeScenarioSpec runs a scenario of nodetest/sio.mjs with a JSON argument (node_test.go).
var NodeScenarioSpec = nodeScenarioSpec
