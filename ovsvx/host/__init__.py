"""One host's own network stack, mode-blind: netlink plans and their reconciler, processes, NIC, firewall, IPsec."""
