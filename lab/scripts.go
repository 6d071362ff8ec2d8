package lab

import _ "embed" // the scripts the lab runs in its hosts

// bootScript is what a reboot runs in a host before sshd starts (see
// boot.sh).
//
//go:embed boot.sh
var bootScript string

// provisionScript shapes a host that is up, as its options ask (see
// provision.sh).
//
//go:embed provision.sh
var provisionScript string
