"""Kernel mode, the tutorial's layout: bridge, vxlan device, onlink route; FRR under EVPN.  Only it knows it."""
