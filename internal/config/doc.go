// Package config loads the configuration of `switchboard serve` from, in increasing order of
// precedence, built-in defaults, an optional YAML file (--config), SWITCHBOARD_* environment
// variables and command-line flags. Every option has all three spellings: the flag
// --max-peers, the YAML key max-peers and the variable SWITCHBOARD_MAX_PEERS.
package config
