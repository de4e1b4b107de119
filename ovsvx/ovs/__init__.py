"""Ovs mode: an OVS bridge, its vxlan port and datapath, and the os-ken controller's flows.  Only this wing knows it."""
