"""Watch: scene-change monitor, motion, object detection, events, notifications."""
