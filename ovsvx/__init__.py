"""ovsvx: stand up, explain and measure a VXLAN overlay between Linux hosts."""

import os
import warnings

# The ovs bindings import eventlet when it is installed (os-ken brings it), and
# eventlet prints a deprecation banner on import; ovsvx does not use eventlet.
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
# ...and eventlet then imports its green DNS resolver (dnspython): half of every
# command's start-up, a second or more in an emulated guest, for lookups that
# neither ovsvx nor the controller makes.  eventlet's own switch turns it off.
os.environ.setdefault("EVENTLET_NO_GREENDNS", "yes")
