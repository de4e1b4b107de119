"""Looking without changing: trace, capture, verify, bench, doctor, graph and metrics, through the Backend interface."""
