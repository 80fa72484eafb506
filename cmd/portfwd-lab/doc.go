// Command portfwd-lab brings up LAB.md's home network (network namespaces
// with a real miniupnpd as the router) for `make demo` and for humans, and
// runs things inside it. The lab outlives the command; its state file
// (default .lab/env, a shell-sourceable KEY=VALUE list) lets later commands
// find it.
//
//	portfwd-lab up [-igdv1] [-cgnat] [-insecure] [-no-upnp] [-no-natpmp]
//	               [-pcp-third-party] [-ipv6-on] [-ipv6] [-iptables]
//	               [-iptables-legacy]
//	portfwd-lab down | reboot | env | sweep | help
//	portfwd-lab exec lan|wan|router -- cmd args...
//	portfwd-lab listen tcp|udp|minecraft PORT (run it in a namespace via exec)
//	portfwd-lab send tcp|udp HOST:PORT
package main
