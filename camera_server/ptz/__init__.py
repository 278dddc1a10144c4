"""Pan-tilt-zoom: Tapo (pytapo) and ONVIF backends behind one interface, run off the event loop with timeouts."""
