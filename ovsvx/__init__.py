"""ovsvx: stand up, explain and measure a VXLAN overlay between Linux hosts."""

import warnings

# The ovs bindings import eventlet when it is installed (os-ken brings it), and
# eventlet prints a deprecation banner on import; ovsvx does not use eventlet.
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
