"""Web: the app factory, one blueprint per area, auth, request fields; the only part that imports Flask."""
