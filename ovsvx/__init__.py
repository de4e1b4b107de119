"""ovsvx: stand up, explain and measure a VXLAN overlay between Linux hosts."""
